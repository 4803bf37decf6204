#!/usr/bin/env bash
# Reference deployment 2 on one host: origins behind HAProxy, edges behind nginx.
#
#                    HAProxy :19350 (TCP, round robin, health checks)
#   encoder ──RTMP──►  ├─► origin1 RTMP :19351  HTTP :18081  API :19851
#                      └─► origin2 RTMP :19352  HTTP :18082  API :19852
#   players ──HTTP──►  nginx :18080 (HTTP-FLV + HLS, CORS, cache headers)
#                      ├─► edge1 RTMP :19451  HTTP :18181 ─┐ pull on demand from
#                      └─► edge2 RTMP :19452  HTTP :18182 ─┘ origin1 / origin2
#
# With `--registry redis`, a redis-server (:19379) is started first and origins and
# edges share the stream registry in it ([vhosts.*.cluster.registry]): edges pull
# each stream straight from the origin that holds it, and a second publish of a
# stream on the other origin is refused.
#
# Usage:
#   conf/deploy/reference.sh up DIR [BIN] [--registry redis]
#                                           write configs into DIR and start everything
#   conf/deploy/reference.sh down DIR       stop exactly the processes `up` started
#   conf/deploy/reference.sh status DIR     list them and whether they still run
#
# BIN is the ringcast binary: default $RINGCAST_BIN, else `ringcast` on PATH, else
# the workspace's target/{release,debug}/ringcast ($CARGO_TARGET_DIR honoured).
#
# Environment:
#   BASE_PORT   moves every port by the same offset (default 18000; the ports are
#               BASE_PORT + 80, 81, 82, 181, 182, 1350, 1351, 1352, 1451, 1452,
#               1851, 1852 as listed above, and 1379 for Redis)
#   NGINX_PORT, HAPROXY_PORT, REDIS_PORT, ORIGIN{1,2}_{RTMP,HTTP,API}_PORT,
#   EDGE{1,2}_{RTMP,HTTP}_PORT   override single ports
#   BIND_HOST   address every component listens on and is reached at
#               (default 127.0.0.1)
#   SHARDS      ringcast executors per server (default 0: one per CPU)
#   START_TIMEOUT  seconds each component may take to accept (default 15)
#
# Every process stays in the foreground (no daemon mode) with its config, pid and
# logs in DIR; no system service is used or changed, nothing listens on port 80:
#   DIR/{origin1,origin2,edge1,edge2}.toml  .log   ringcast configs and logs
#   DIR/haproxy.cfg  haproxy.log                  HAProxy
#   DIR/nginx.conf   nginx-error.log  nginx-access.log
#   DIR/pids         "NAME PID EXE" of every process started, what `down` stops
# haproxy and nginx (and redis-server with --registry redis) are installed with
# apt-get when missing.
set -euo pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SELF_DIR/../.." && pwd)

die() {
    echo "reference.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- ports

set_ports() {
    local base=${BASE_PORT:-18000}
    [[ $base =~ ^[0-9]+$ ]] || die "BASE_PORT=$base is not a number"
    NGINX_PORT=${NGINX_PORT:-$((base + 80))}
    ORIGIN1_HTTP_PORT=${ORIGIN1_HTTP_PORT:-$((base + 81))}
    ORIGIN2_HTTP_PORT=${ORIGIN2_HTTP_PORT:-$((base + 82))}
    EDGE1_HTTP_PORT=${EDGE1_HTTP_PORT:-$((base + 181))}
    EDGE2_HTTP_PORT=${EDGE2_HTTP_PORT:-$((base + 182))}
    HAPROXY_PORT=${HAPROXY_PORT:-$((base + 1350))}
    ORIGIN1_RTMP_PORT=${ORIGIN1_RTMP_PORT:-$((base + 1351))}
    ORIGIN2_RTMP_PORT=${ORIGIN2_RTMP_PORT:-$((base + 1352))}
    EDGE1_RTMP_PORT=${EDGE1_RTMP_PORT:-$((base + 1451))}
    EDGE2_RTMP_PORT=${EDGE2_RTMP_PORT:-$((base + 1452))}
    ORIGIN1_API_PORT=${ORIGIN1_API_PORT:-$((base + 1851))}
    ORIGIN2_API_PORT=${ORIGIN2_API_PORT:-$((base + 1852))}
    REDIS_PORT=${REDIS_PORT:-$((base + 1379))}
    ALL_PORTS=("$NGINX_PORT" "$ORIGIN1_HTTP_PORT" "$ORIGIN2_HTTP_PORT" "$EDGE1_HTTP_PORT"
        "$EDGE2_HTTP_PORT" "$HAPROXY_PORT" "$ORIGIN1_RTMP_PORT" "$ORIGIN2_RTMP_PORT"
        "$EDGE1_RTMP_PORT" "$EDGE2_RTMP_PORT" "$ORIGIN1_API_PORT" "$ORIGIN2_API_PORT")
    [[ $REGISTRY != redis ]] || ALL_PORTS+=("$REDIS_PORT")
    local p seen=" "
    for p in "${ALL_PORTS[@]}"; do
        if ! [[ $p =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
            die "bad port $p"
        fi
        ((p != 80)) || die "port 80 is not used by this deployment; pick another BASE_PORT"
        [[ $seen != *" $p "* ]] || die "port $p is assigned twice"
        seen+="$p "
    done
}

# Whether something accepts connections on HOST:PORT right now.
accepts() {
    (exec 3<>"/dev/tcp/$BIND_HOST/$1") 2>/dev/null
}

# ---------------------------------------------------------------- tools

find_bin() {
    local bin=${1:-${RINGCAST_BIN:-}}
    if [[ -z $bin ]]; then
        bin=$(command -v ringcast || true)
    fi
    if [[ -z $bin ]]; then
        local target=${CARGO_TARGET_DIR:-$REPO_DIR/target} c
        for c in "$target/release/ringcast" "$target/debug/ringcast"; do
            if [[ -x $c ]]; then
                bin=$c
                break
            fi
        done
    fi
    [[ -n $bin ]] || die "no ringcast binary: pass BIN, set RINGCAST_BIN, or build it (cargo build -p ringcast-engine)"
    [[ -x $bin ]] || die "$bin is not an executable"
    (cd "$(dirname "$bin")" && echo "$(pwd)/$(basename "$bin")")
}

# Installs the Debian packages of the missing tools. Package scripts must not start
# the system services (the Debian nginx one listens on port 80): while installing, a
# policy-rc.d refuses service starts, unless the host already has its own.
ensure_tools() {
    local missing=() t
    local tools=(haproxy nginx)
    [[ $REGISTRY != redis ]] || tools+=(redis-server)
    for t in "${tools[@]}"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    ((${#missing[@]} == 0)) && return 0
    echo "installing ${missing[*]} with apt-get" >&2
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "${missing[*]} missing and not root (apt-get install -y ${missing[*]})"
        sudo=(sudo -n)
    fi
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        own_policy=1
    fi
    local ok=0
    if DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${missing[@]}" >&2; then
        ok=1
    else
        echo "apt-get install failed; updating the package lists and retrying" >&2
        if "${sudo[@]}" apt-get update >&2 &&
            DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${missing[@]}" >&2; then
            ok=1
        fi
    fi
    if ((own_policy)); then
        "${sudo[@]}" rm -f "$policy"
    fi
    ((ok)) || die "could not install ${missing[*]} (apt-get install -y ${missing[*]})"
    for t in "${missing[@]}"; do
        command -v "$t" >/dev/null 2>&1 || die "$t still missing after apt-get install"
    done
}

# ---------------------------------------------------------------- configs

render() {
    local template=$1 out=$2 name=$3 rtmp=${4:-} http=${5:-} api=${6:-}
    sed -e "s|@DIR@|$DIR|g" -e "s|@HOST@|$BIND_HOST|g" -e "s|@NAME@|$name|g" \
        -e "s|@SHARDS@|$SHARDS|g" -e "s|@RTMP_PORT@|$rtmp|g" -e "s|@HTTP_PORT@|$http|g" \
        -e "s|@API_PORT@|$api|g" -e "s|@NGINX_PORT@|$NGINX_PORT|g" \
        -e "s|@HAPROXY_PORT@|$HAPROXY_PORT|g" \
        -e "s|@ORIGIN1_RTMP_PORT@|$ORIGIN1_RTMP_PORT|g" \
        -e "s|@ORIGIN2_RTMP_PORT@|$ORIGIN2_RTMP_PORT|g" \
        -e "s|@EDGE1_HTTP_PORT@|$EDGE1_HTTP_PORT|g" \
        -e "s|@EDGE2_HTTP_PORT@|$EDGE2_HTTP_PORT|g" \
        "$SELF_DIR/$template" >"$out"
    if grep -q '@[A-Z0-9_]*@' "$out"; then
        die "unfilled placeholder in $out: $(grep -o '@[A-Z0-9_]*@' "$out" | head -1)"
    fi
}

write_configs() {
    render origin.toml.in "$DIR/origin1.toml" origin1 "$ORIGIN1_RTMP_PORT" "$ORIGIN1_HTTP_PORT" "$ORIGIN1_API_PORT"
    render origin.toml.in "$DIR/origin2.toml" origin2 "$ORIGIN2_RTMP_PORT" "$ORIGIN2_HTTP_PORT" "$ORIGIN2_API_PORT"
    render edge.toml.in "$DIR/edge1.toml" edge1 "$EDGE1_RTMP_PORT" "$EDGE1_HTTP_PORT"
    render edge.toml.in "$DIR/edge2.toml" edge2 "$EDGE2_RTMP_PORT" "$EDGE2_HTTP_PORT"
    render haproxy.cfg.in "$DIR/haproxy.cfg" haproxy
    render nginx.conf.in "$DIR/nginx.conf" nginx
    mkdir -p "$DIR/nginx-temp"
    local f
    if [[ $REGISTRY == redis ]]; then
        for f in origin1 origin2 edge1 edge2; do
            cat >>"$DIR/$f.toml" <<EOF

# --registry redis: the cluster's stream registry (README, "Stream registry").
[vhosts.__defaultVhost__.cluster.registry]
kind = "redis"
url = "redis://$BIND_HOST:$REDIS_PORT/0"
EOF
        done
    fi
    for f in origin1 origin2 edge1 edge2; do
        "$BIN" -t -c "$DIR/$f.toml" >"$DIR/$f.check.log" 2>&1 ||
            die "ringcast rejects $DIR/$f.toml: $(cat "$DIR/$f.check.log")"
    done
    haproxy -c -q -f "$DIR/haproxy.cfg" >"$DIR/haproxy.check.log" 2>&1 ||
        die "haproxy rejects $DIR/haproxy.cfg: $(cat "$DIR/haproxy.check.log")"
    nginx -t -q -p "$DIR/" -e "$DIR/nginx-error.log" -c "$DIR/nginx.conf" >"$DIR/nginx.check.log" 2>&1 ||
        die "nginx rejects $DIR/nginx.conf: $(cat "$DIR/nginx.check.log")"
    rm -f "$DIR"/*.check.log
}

# ---------------------------------------------------------------- processes

# The executable of a live pid ("" when gone), to tell our process from a
# recycled pid.
exe_of() {
    local e
    e=$(readlink "/proc/$1/exe" 2>/dev/null) || return 0
    echo "${e% (deleted)}"
}

# Whether PID runs (not a zombie) and, when EXE is given, still runs EXE.
ours() {
    local now
    now=$(exe_of "$1")
    [[ -n $now ]] || return 1
    [[ -z ${2:-} || $now == "$2" ]] || return 1
    ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

# start NAME PORT... -- CMD...: runs CMD in the background (stdin closed, output to
# DIR/NAME.log, its own process group so a terminal's Ctrl-C does not reach it),
# records it in DIR/pids and waits until every PORT accepts.
start() {
    local name=$1
    shift
    local ports=()
    while [[ $1 != -- ]]; do
        ports+=("$1")
        shift
    done
    shift
    local exe
    exe=$(command -v "$1") || die "$1: not found"
    exe=$(readlink -f "$exe")
    # A script's background jobs start with SIGINT and SIGQUIT ignored, which would
    # make `down` wait for a server stopped before it set up its own handlers.
    local reset=()
    if env --default-signal=INT,QUIT true 2>/dev/null; then
        reset=(env "--default-signal=INT,QUIT")
    fi
    setsid "${reset[@]}" "$@" </dev/null >>"$DIR/$name.log" 2>&1 &
    local pid=$!
    # The background job is this shell forked, then setsid (and env), then the
    # command, all in one process (setsid forks only when it leads a process group,
    # which a background job of a script does not): record the pid with the
    # command's executable, and wait until it runs it, so `down` can tell our
    # process from a recycled pid.
    echo "$name $pid $exe" >>"$DIR/pids"
    local i
    for ((i = 0; i < 100; i++)); do
        [[ $(exe_of "$pid") == "$exe" ]] && break
        ours "$pid" || break
        sleep 0.02
    done
    local deadline=$((SECONDS + START_TIMEOUT)) p
    for p in "${ports[@]}"; do
        until accepts "$p"; do
            if ! ours "$pid"; then
                echo "$name exited during start-up; last lines of $DIR/$name.log:" >&2
                tail -n 30 "$DIR/$name.log" >&2 || true
                return 1
            fi
            if ((SECONDS >= deadline)); then
                echo "$name: port $p not accepting after ${START_TIMEOUT}s; last lines of $DIR/$name.log:" >&2
                tail -n 30 "$DIR/$name.log" >&2 || true
                return 1
            fi
            sleep 0.1
        done
    done
    echo "started $name (pid $pid)" >&2
}

# Sends SIG to the recorded process NAME PID EXE if it is still that process.
signal_recorded() {
    local sig=$1 name=$2 pid=$3 exe=$4 now
    now=$(exe_of "$pid")
    if [[ -z $now ]]; then
        return 1
    fi
    if [[ -n $exe && $now != "$exe" ]]; then
        echo "pid $pid is no longer $name ($now); leaving it alone" >&2
        return 1
    fi
    kill "-$sig" "$pid" 2>/dev/null
}

# Stops the processes in DIR/pids in reverse start order: a fast quit each
# (SIGINT for ringcast, whose SIGTERM is graceful here; SIGTERM for nginx and
# haproxy), SIGKILL for any still running after 10 s.
stop_all() {
    [[ -f $DIR/pids ]] || return 0
    local lines=() line name pid exe sig i
    mapfile -t lines <"$DIR/pids"
    local waiting=()
    for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
        read -r name pid exe <<<"${lines[i]}"
        [[ -n ${pid:-} ]] || continue
        case $name in
        nginx | haproxy) sig=TERM ;;
        *) sig=INT ;;
        esac
        if signal_recorded "$sig" "$name" "$pid" "${exe:-}"; then
            waiting+=("$name $pid ${exe:-}")
        fi
    done
    local deadline=$((SECONDS + 10)) left
    while :; do
        left=()
        for line in "${waiting[@]}"; do
            read -r name pid exe <<<"$line"
            if ours "$pid" "${exe:-}"; then
                left+=("$line")
            else
                echo "stopped $name (pid $pid)" >&2
            fi
        done
        waiting=("${left[@]}")
        ((${#waiting[@]} == 0)) && break
        if ((SECONDS >= deadline)); then
            for line in "${waiting[@]}"; do
                read -r name pid exe <<<"$line"
                echo "killing $name (pid $pid): still running after 10 s" >&2
                signal_recorded KILL "$name" "$pid" "${exe:-}" || true
            done
            break
        fi
        sleep 0.1
    done
    rm -f "$DIR/pids"
}

# ---------------------------------------------------------------- commands

abort_up() {
    echo "start-up failed; stopping what was started" >&2
    stop_all
}

cmd_up() {
    BIN=$(find_bin "${1:-}")
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    # DIR is pasted into configs (sed replacement, quoted strings).
    [[ $DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR=$DIR: use only letters, digits and . _ / + -"
    if [[ -f $DIR/pids ]]; then
        local name pid exe
        while read -r name pid exe; do
            if [[ -n ${pid:-} ]] && ours "$pid" "${exe:-}"; then
                die "$name (pid $pid) from an earlier 'up' still runs; run: $0 down $DIR"
            fi
        done <"$DIR/pids"
        rm -f "$DIR/pids"
    fi
    local p
    for p in "${ALL_PORTS[@]}"; do
        ! accepts "$p" || die "port $p on $BIND_HOST is already in use; pick another BASE_PORT"
    done
    ensure_tools
    write_configs
    # However start-up ends early (a failed step, die, Ctrl-C), stop what was started.
    trap abort_up EXIT
    trap 'exit 130' INT TERM
    if [[ $REGISTRY == redis ]]; then
        start redis "$REDIS_PORT" -- redis-server --port "$REDIS_PORT" --bind "$BIND_HOST" \
            --save '' --appendonly no --dir "$DIR"
    fi
    start origin1 "$ORIGIN1_RTMP_PORT" "$ORIGIN1_HTTP_PORT" "$ORIGIN1_API_PORT" -- "$BIN" -c "$DIR/origin1.toml"
    start origin2 "$ORIGIN2_RTMP_PORT" "$ORIGIN2_HTTP_PORT" "$ORIGIN2_API_PORT" -- "$BIN" -c "$DIR/origin2.toml"
    start haproxy "$HAPROXY_PORT" -- haproxy -db -f "$DIR/haproxy.cfg"
    start edge1 "$EDGE1_RTMP_PORT" "$EDGE1_HTTP_PORT" -- "$BIN" -c "$DIR/edge1.toml"
    start edge2 "$EDGE2_RTMP_PORT" "$EDGE2_HTTP_PORT" -- "$BIN" -c "$DIR/edge2.toml"
    start nginx "$NGINX_PORT" -- nginx -p "$DIR/" -e "$DIR/nginx-error.log" -c "$DIR/nginx.conf"
    trap - EXIT INT TERM
    cat <<EOF
reference deployment 2 is up (configs, logs and pids in $DIR)
  publish:  rtmp://$BIND_HOST:$HAPROXY_PORT/live/STREAM        (HAProxy -> origin1 :$ORIGIN1_RTMP_PORT / origin2 :$ORIGIN2_RTMP_PORT)
  HTTP-FLV: http://$BIND_HOST:$NGINX_PORT/live/STREAM.flv      (nginx -> edge1 :$EDGE1_HTTP_PORT / edge2 :$EDGE2_HTTP_PORT)
  HLS:      http://$BIND_HOST:$NGINX_PORT/live/STREAM.m3u8
  RTMP:     rtmp://$BIND_HOST:$EDGE1_RTMP_PORT/live/STREAM   rtmp://$BIND_HOST:$EDGE2_RTMP_PORT/live/STREAM  (edges)
  API:      http://$BIND_HOST:$ORIGIN1_API_PORT/api/v1/streams   http://$BIND_HOST:$ORIGIN2_API_PORT/api/v1/streams  (origins)
  stop:     $0 down $DIR
EOF
    if [[ $REGISTRY == redis ]]; then
        echo "  registry: redis://$BIND_HOST:$REDIS_PORT/0  (keys ringcast:stream:VHOST/APP/STREAM)"
    fi
}

cmd_status() {
    [[ -f $DIR/pids ]] || {
        echo "not up (no $DIR/pids)"
        return 0
    }
    local name pid exe
    while read -r name pid exe; do
        if ours "$pid" "${exe:-}"; then
            echo "$name pid $pid running"
        else
            echo "$name pid $pid not running"
        fi
    done <"$DIR/pids"
}

main() {
    (($# >= 2)) || usage
    local cmd=$1
    DIR=$2
    shift 2
    REGISTRY=none
    local rest=()
    while (($#)); do
        case $1 in
        --registry)
            (($# >= 2)) || die "--registry needs a kind (redis or none)"
            [[ $2 == redis || $2 == none ]] || die "--registry $2: the kinds are redis and none"
            REGISTRY=$2
            shift 2
            ;;
        *)
            rest+=("$1")
            shift
            ;;
        esac
    done
    set -- "${rest[@]}"
    BIND_HOST=${BIND_HOST:-127.0.0.1}
    SHARDS=${SHARDS:-0}
    START_TIMEOUT=${START_TIMEOUT:-15}
    [[ $SHARDS =~ ^[0-9]+$ ]] || die "SHARDS=$SHARDS is not a number"
    [[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "START_TIMEOUT=$START_TIMEOUT is not a number"
    set_ports
    case $cmd in
    up) cmd_up "$@" ;;
    down)
        [[ -d $DIR ]] || die "no such directory $DIR"
        DIR=$(cd "$DIR" && pwd)
        stop_all
        ;;
    status)
        [[ -d $DIR ]] || die "no such directory $DIR"
        DIR=$(cd "$DIR" && pwd)
        cmd_status
        ;;
    *) usage ;;
    esac
}

main "$@"

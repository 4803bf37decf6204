#!/usr/bin/env bash
# Regenerates benches/results.jsonl, benches/results.md and its chart
# benches/results.svg: ringcast against nginx-rtmp and against the raw limit
# (`ringcast-bench raw-server`), under the same `ringcast-bench play` load,
# on loopback.
#
#   benches/compare.sh                 # everything, 3 repetitions (~30 min)
#   benches/compare.sh --quick         # 1 repetition, short windows (smoke run)
#   benches/compare.sh --only rtmp-200k-2000,shards   # re-run only cases whose
#                                      # name starts so, keeping the others' results
#   benches/compare.sh --render        # only re-render results.md and .svg from results.jsonl
#   benches/compare.sh --out /tmp/x.jsonl  # write /tmp/x.jsonl, .md and .svg instead
#
# Cases (names for --only): rtmp-200k-<n>, rtmp-1m-<n>, flv-200k-<n>,
# streams-100x20, streams-1000x2, ll-streams-100x20, ll-streams-1000x2,
# shards-200k-2000, ramp500-200k-2000, join-8000, ll-rtmp-200k-<n>, ll-flv-200k-<n>,
# ingest-1000, mw-rtmp-<ms>, mw-flv-<ms> (ms: 0 40 100 200 350).
#
# Every repetition runs each server of a case back to back (fresh server,
# fresh publisher), so each ringcast figure has a peer measured next to it.
# Only processes this script started are ever stopped, by pid.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
RUNS=3
STEADY=10      # seconds of steady window aimed for
RAMP=1000      # players started per second in the load cases
MW_DEFAULT=350 # ringcast's default mw_latency_ms (conf/ringcast.toml)
ONLY=""
RENDER_ONLY=0
OUT_JSONL=$HERE/results.jsonl
OUT_MD=$HERE/results.md
OUT_SVG=$HERE/results.svg

while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) RUNS=1; STEADY=6; shift ;;
    --runs) RUNS=$2; shift 2 ;;
    --steady) STEADY=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --out) OUT_JSONL=$2; OUT_MD=${2%.jsonl}.md; OUT_SVG=${2%.jsonl}.svg; shift 2 ;;
    --render) RENDER_ONLY=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
B=$CARGO_TARGET_DIR/release/ringcast-bench
S=$CARGO_TARGET_DIR/release/ringcast

log() { printf '[compare %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

render() {
  "$B" table --input "$OUT_JSONL" > "$OUT_MD.tmp" && mv "$OUT_MD.tmp" "$OUT_MD"
  "$B" chart --input "$OUT_JSONL" > "$OUT_SVG.tmp" && mv "$OUT_SVG.tmp" "$OUT_SVG"
  log "wrote $OUT_MD and $OUT_SVG"
}

log "building release binaries into $CARGO_TARGET_DIR"
(cd "$ROOT" && cargo build --release -q -p ringcast-engine -p ringcast-bench)

if [[ $RENDER_ONLY == 1 ]]; then render; exit 0; fi

# --- tools -------------------------------------------------------------------
find_rtmp_module() {
  local d
  for d in /usr/lib/nginx/modules /usr/share/nginx/modules /usr/lib64/nginx/modules; do
    [[ -f $d/ngx_rtmp_module.so ]] && { echo "$d/ngx_rtmp_module.so"; return; }
  done
  return 0
}
if ! command -v nginx >/dev/null || [[ -z $(find_rtmp_module) ]]; then
  log "installing nginx and libnginx-mod-rtmp"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-rtmp
fi
RTMP_MODULE=$(find_rtmp_module)
[[ -n $RTMP_MODULE ]] || { echo "ngx_rtmp_module.so not found" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "ffmpeg is needed (apt-get install -y ffmpeg)" >&2; exit 1; }

# 10,000 players need one fd each on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited && $NOFILE -lt 10100 ]]; then
  log "open-file limit $NOFILE: cases above $((NOFILE - 100)) players are skipped"
fi

WORK=$(mktemp -d /tmp/ringcast-compare.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

stop() { # stop PID...: the given pids only, then reap them
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
  local keep=() q
  for q in "${PIDS[@]}"; do
    local gone=0
    for p in "$@"; do [[ $q == "$p" ]] && gone=1; done
    [[ $gone == 1 ]] || keep+=("$q")
  done
  PIDS=("${keep[@]}")
}

# shellcheck source=benches/lib.sh
source "$HERE/lib.sh"

# --- fixtures ----------------------------------------------------------------
make_fixture() { # make_fixture FILE VIDEO_BITRATE
  ffmpeg -hide_banner -loglevel error -nostdin -y \
    -f lavfi -i testsrc=size=640x360:rate=25 -f lavfi -i sine=frequency=440:sample_rate=44100 \
    -t 10 -c:v libx264 -preset ultrafast -g 50 -pix_fmt yuv420p -b:v "$2" \
    -c:a aac -b:a 64k -f flv "$1"
}
FIX_200K=$WORK/f200k.flv
FIX_1M=$WORK/f1m.flv
make_fixture "$FIX_200K" 150k
make_fixture "$FIX_1M" 1M

# --- servers -----------------------------------------------------------------
# Each start_* sets SRV_PIDS (comma list measured by play), SRV_STOP (pids to
# stop), RTMP_PORT and, for ringcast, HTTP_PORT.
start_ringcast() { # start_ringcast SHARDS MW_LATENCY_MS [TCP_NODELAY]
  RTMP_PORT=$(free_port); HTTP_PORT=$(free_port)
  cat > "$WORK/ringcast.toml" <<EOF
[server]
shards = $1
max_connections = 20000
log_level = "warn"

[rtmp]
listen = ["127.0.0.1:$RTMP_PORT"]

[http_server]
enabled = true
listen = ["127.0.0.1:$HTTP_PORT"]

[vhosts.__defaultVhost__]
mw_latency_ms = $2
tcp_nodelay = ${3:-true}
EOF
  "$S" -c "$WORK/ringcast.toml" > "$WORK/ringcast.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_listen "$RTMP_PORT" "$pid" && wait_listen "$HTTP_PORT" "$pid" || {
    tail -5 "$WORK/ringcast.log" >&2; return 1; }
  SRV_PIDS=$pid; SRV_STOP=$pid
}

start_nginx() {
  RTMP_PORT=$(free_port)
  local d=$WORK/nginx
  rm -rf "$d"; mkdir -p "$d"
  # One worker: nginx-rtmp's multi-worker mode (rtmp_auto_push) does not
  # deliver here: players accepted by the worker without the publisher get
  # no media, and accept_mutex / multi_accept only pile every player onto
  # one worker anyway (see benches/README.md). nginx-rtmp's default
  # chunk_size (4096); no access log (ringcast logs at warn).
  cat > "$d/nginx.conf" <<EOF
load_module $RTMP_MODULE;
user root;
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 20000; }
rtmp {
  access_log off;
  server {
    listen 127.0.0.1:$RTMP_PORT;
    application live { live on; }
  }
}
EOF
  nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" > "$d/stdout.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_listen "$RTMP_PORT" "$pid" || { tail -5 "$d/error.log" >&2; return 1; }
  local workers
  workers=$(pgrep -P "$pid" | paste -sd, -)
  SRV_PIDS=$pid${workers:+,$workers}; SRV_STOP=$pid
}

start_raw() { # start_raw PROTO FIXTURE TICK_MS
  RTMP_PORT=$(free_port); HTTP_PORT=$RTMP_PORT
  "$B" raw-server --listen "127.0.0.1:$RTMP_PORT" --file "$2" --proto "$1" \
    --threads 2 --tick-ms "$3" --duration 600 > "$WORK/raw.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_listen "$RTMP_PORT" "$pid" || { tail -5 "$WORK/raw.log" >&2; return 1; }
  SRV_PIDS=$pid; SRV_STOP=$pid
}

# Publishes FIXTURE to the started server: ffmpeg for one stream, the
# bench's own publisher for many (100 ffmpeg processes would swamp 2 cores).
start_publisher() { # start_publisher FIXTURE STREAMS
  local url=rtmp://127.0.0.1:$RTMP_PORT/live/s pid
  if [[ $2 == 1 ]]; then
    ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$1" -c copy \
      -f flv "$url" > "$WORK/publisher.log" 2>&1 &
  else
    "$B" publish --url "$url" --file "$1" --loop --duration 600 --streams "$2" \
      > "$WORK/publisher.log" 2>&1 &
  fi
  pid=$!
  PIDS+=("$pid")
  PUB_PID=$pid
  # Let one GOP (2 s) reach the server so players start at once.
  sleep 2.2
}

# --- one measurement ---------------------------------------------------------
# run_one CASE TITLE SERVER REP PROTO PLAYERS STREAMS FIXTURE RAMP
run_one() {
  local cname=$1 title=$2 server=$3 rep=$4 proto=$5 players=$6 streams=$7 fix=$8 ramp=$9
    local url out pub=0
  # Batching: ringcast's merged write (mw_latency_ms, default 350 like SRS)
  # and the raw server's release tick are set alike, so "× raw" compares
  # equal write counts. The "ll-" cases run ringcast with merged write off
  # against a raw server releasing each 40 ms frame time (what ffmpeg -re
  # feeds): the latency nginx-rtmp has, which writes messages as they come.
  # The "mw-<proto>-<ms>" cases run ringcast at that mw_latency_ms and the
  # raw server at a tick of the same ms (40 for 0, as in the ll- cases).
  local mw=$MW_DEFAULT tick=$MW_DEFAULT
  if [[ $cname == ll-* ]]; then mw=0; tick=40; fi
  if [[ $cname == mw-* ]]; then mw=${cname##*-}; tick=$mw; [[ $mw == 0 ]] && tick=40; fi
  case $server in
    ringcast) start_ringcast 2 "$mw" ;;
    ringcast-1shard) start_ringcast 1 "$mw" ;;
    ringcast-nagle) start_ringcast 2 "$mw" false ;;
    nginx-rtmp) start_nginx ;;
    raw) start_raw "$proto" "$fix" "$tick" ;;
  esac
  if [[ $server != raw ]]; then start_publisher "$fix" "$streams"; pub=1; else sleep 1; fi
  if [[ $proto == rtmp ]]; then
    url=rtmp://127.0.0.1:$RTMP_PORT/live/s
  else
    url=http://127.0.0.1:$HTTP_PORT/live/s.flv
  fi
  local ramp_secs=$(( (players + ramp - 1) / ramp ))
  local duration=$(( ramp_secs + 3 + STEADY ))
  out=$WORK/play.json
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  log "$cname rep $rep: $server, $players $proto players over $streams stream(s), ramp $ramp/s, ${duration}s, load $load"
  if "$B" play --url "$url" --players "$players" --streams "$streams" --ramp "$ramp" \
      --duration "$duration" --server-pid "$SRV_PIDS" --json > "$out" 2> "$WORK/play.err"; then
    printf '{"case":"%s","title":"%s","server":"%s","rep":%d,"load":%s,"report":%s}\n' \
      "$cname" "$title" "$server" "$rep" "$load" "$(cat "$out")" >> "$OUT_JSONL"
  else
    log "play failed: $(tail -3 "$WORK/play.err")"
    printf '{"case":"%s","title":"%s","server":"%s","skipped":"play failed: %s"}\n' \
      "$cname" "$title" "$server" "$(tail -1 "$WORK/play.err" | tr -d '"\\')" >> "$OUT_JSONL"
  fi
  if [[ $pub == 1 ]]; then stop "$PUB_PID"; fi
  stop "$SRV_STOP"
}

# record_failure CASE TITLE SERVER WHAT FILE...: logs the failure and records
# the case as skipped, with the last line of each FILE as the reason.
record_failure() {
  local cname=$1 title=$2 server=$3 what=$4 why
  shift 4
  why=$(for f in "$@"; do tail -1 "$f"; done | tr -d '"\\' | paste -sd' ' -)
  log "$what failed: $why"
  printf '{"case":"%s","title":"%s","server":"%s","skipped":"%s failed: %s"}\n' \
    "$cname" "$title" "$server" "$what" "$why" >> "$OUT_JSONL"
}

# ingest_one CASE TITLE SERVER REP STREAMS FIXTURE: STREAMS published, no
# players. `ringcast-bench ingest` samples the server's RSS before the
# publisher starts, waits out an 8 s warm-up (connects, first GOPs) and
# measures CPU over the steady window.
ingest_one() {
  local cname=$1 title=$2 server=$3 rep=$4 streams=$5 fix=$6
  case $server in
    ringcast) start_ringcast 2 "$MW_DEFAULT" ;;
    nginx-rtmp) start_nginx ;;
  esac
  local out=$WORK/ingest.json load ipid
  load=$(cut -d' ' -f1 /proc/loadavg)
  log "$cname rep $rep: $server, $streams streams published, no players, ~$((8 + STEADY))s, load $load"
  # The publisher waits 0.5 s (exec keeps its pid) so the baseline sample,
  # taken as soon as `ingest` starts, comes before the first stream.
  (sleep 0.5; exec "$B" publish --url "rtmp://127.0.0.1:$RTMP_PORT/live/s" --file "$fix" \
    --loop --duration 600 --streams "$streams") > "$WORK/publisher.log" 2>&1 &
  PUB_PID=$!
  PIDS+=("$PUB_PID")
  "$B" ingest --server-pid "$SRV_PIDS" --streams "$streams" --warmup 8 --duration "$STEADY" \
    --publisher-pid "$PUB_PID" --json > "$out" 2> "$WORK/ingest.err" &
  ipid=$!
  PIDS+=("$ipid")
  local ok=0
  wait "$ipid" && ok=1
  stop "$ipid"
  if [[ $ok == 1 ]] && kill -0 "$PUB_PID" 2>/dev/null; then
    printf '{"case":"%s","title":"%s","server":"%s","rep":%d,"load":%s,"report":%s}\n' \
      "$cname" "$title" "$server" "$rep" "$load" "$(cat "$out")" >> "$OUT_JSONL"
  else
    record_failure "$cname" "$title" "$server" ingest "$WORK/ingest.err" "$WORK/publisher.log"
  fi
  stop "$PUB_PID"
  stop "$SRV_STOP"
}

# join_one CASE TITLE SERVER REP CROWD FIXTURE: CROWD RTMP players of one
# stream join at RAMP/s and play; once they all play, 200 newcomers join at
# 50/s, a rate the load tool keeps up with, and their first keyframe is the
# figure: how long set-up waits behind the fan-out to the crowd. The
# newcomers' report is recorded, with the crowd's own as "crowd".
join_one() {
  local cname=$1 title=$2 server=$3 rep=$4 crowd=$5 fix=$6
  case $server in
    ringcast) start_ringcast 2 "$MW_DEFAULT" ;;
    nginx-rtmp) start_nginx ;;
  esac
  start_publisher "$fix" 1
  local url=rtmp://127.0.0.1:$RTMP_PORT/live/s load cpid ok=0
  local settle=$(( (crowd + RAMP - 1) / RAMP + 4 ))
  load=$(cut -d' ' -f1 /proc/loadavg)
  log "$cname rep $rep: $server, $crowd players, then 200 joining at 50/s, load $load"
  "$B" play --url "$url" --players "$crowd" --ramp "$RAMP" --duration $((settle + 12)) \
    --server-pid "$SRV_PIDS" --json > "$WORK/crowd.json" 2> "$WORK/crowd.err" &
  cpid=$!
  PIDS+=("$cpid")
  sleep "$settle"
  if "$B" play --url "$url" --players 200 --ramp 50 --duration 8 --json \
      > "$WORK/join.json" 2> "$WORK/join.err" && wait "$cpid"; then
    ok=1
  fi
  stop "$cpid"
  if [[ $ok == 1 ]]; then
    printf '{"case":"%s","title":"%s","server":"%s","rep":%d,"load":%s,"report":%s,"crowd":%s}\n' \
      "$cname" "$title" "$server" "$rep" "$load" "$(cat "$WORK/join.json")" "$(cat "$WORK/crowd.json")" \
      >> "$OUT_JSONL"
  else
    record_failure "$cname" "$title" "$server" join "$WORK/join.err" "$WORK/crowd.err"
  fi
  stop "$PUB_PID"
  stop "$SRV_STOP"
}

# each_rep FN CASE TITLE COUNT FIXTURE SERVER...: when CASE is selected, runs
# `FN CASE TITLE SERVER REP COUNT FIXTURE` for every repetition and server
# (ingest_one: COUNT streams; join_one: a crowd of COUNT players).
each_rep() {
  local fn=$1 cname=$2 title=$3 count=$4 fix=$5
  shift 5
  selected "$cname" || return 0
  local rep s
  for rep in $(seq 1 "$RUNS"); do
    for s in "$@"; do "$fn" "$cname" "$title" "$s" "$rep" "$count" "$fix"; done
  done
}

selected() { # selected CASE: true when --only is empty or names a prefix of CASE
  [[ -z $ONLY ]] && return 0
  local p
  IFS=, read -ra want <<< "$ONLY"
  for p in "${want[@]}"; do [[ $1 == "$p"* ]] && return 0; done
  return 1
}

# run_case CASE TITLE PROTO PLAYERS STREAMS FIXTURE RAMP SERVER...
run_case() {
  local cname=$1 title=$2 proto=$3 players=$4 streams=$5 fix=$6 ramp=$7
  shift 7
  selected "$cname" || return 0
  if [[ $NOFILE != unlimited && $((players + 100)) -gt $NOFILE ]]; then
    local s
    for s in "$@"; do
      printf '{"case":"%s","title":"%s","server":"%s","skipped":"open-file limit %s"}\n' \
        "$cname" "$title" "$s" "$NOFILE" >> "$OUT_JSONL"
    done
    return 0
  fi
  local rep s
  for rep in $(seq 1 "$RUNS"); do
    for s in "$@"; do
      run_one "$cname" "$title" "$s" "$rep" "$proto" "$players" "$streams" "$fix" "$ramp"
    done
  done
}

skip_case() { # skip_case CASE TITLE REASON SERVER...
  local cname=$1 title=$2 why=$3 s
  shift 3
  selected "$cname" || return 0
  for s in "$@"; do
    printf '{"case":"%s","title":"%s","server":"%s","skipped":"%s"}\n' \
      "$cname" "$title" "$s" "$why" >> "$OUT_JSONL"
  done
}

# --- the run -----------------------------------------------------------------
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //')
NOW=$(date -u +%Y-%m-%dT%H:%MZ)
if [[ -n $ONLY && -s $OUT_JSONL ]]; then
  # Re-run of some cases: keep every other case's lines, note the re-run.
  while IFS= read -r line; do
    c=$(sed -n 's/^{"case":"\([^"]*\)".*/\1/p' <<< "$line")
    if [[ -n $c ]] && selected "$c"; then continue; fi
    printf '%s\n' "$line"
  done < "$OUT_JSONL" > "$WORK/kept.jsonl"
  cp "$WORK/kept.jsonl" "$OUT_JSONL"
  printf '{"meta":{"re-run %s":"cases %s re-measured (commit %s, load average %s)"}}\n' \
    "$NOW" "$ONLY" "$GIT_REV" "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT_JSONL"
else
  printf '{"meta":{"date":"%s","machine":"%s CPU(s), %s, %s GiB RAM, kernel %s","load average at start":"%s","ringcast commit":"%s (plus uncommitted changes, if any)","nginx":"%s with ngx_rtmp_module","repetitions":"%s per server per case, steady window ~%s s, ramp %s players/s"}}\n' \
    "$NOW" "$(nproc)" "$CPU_MODEL" \
    "$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)" "$(uname -r)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$GIT_REV" "$NGINX_VERSION" "$RUNS" "$STEADY" "$RAMP" \
    > "$OUT_JSONL"
fi

T0=$SECONDS
for n in 1000 2000 5000 10000; do
  run_case "rtmp-200k-$n" "RTMP, 1 stream, ~200 kbit/s, $n players" rtmp "$n" 1 "$FIX_200K" "$RAMP" \
    ringcast nginx-rtmp raw
done
for n in 1000 2000; do
  run_case "rtmp-1m-$n" "RTMP, 1 stream, ~1 Mbit/s, $n players" rtmp "$n" 1 "$FIX_1M" "$RAMP" \
    ringcast nginx-rtmp raw
done
for n in 5000 10000; do
  skip_case "rtmp-1m-$n" "RTMP, 1 stream, ~1 Mbit/s, $n players" \
    "scaled down: $((n / 1000)) Gbit/s of loopback traffic needs more than the 2 shared cores (the load tool alone saturates)" \
    ringcast nginx-rtmp raw
done
for n in 1000 2000 5000 10000; do
  run_case "flv-200k-$n" "HTTP-FLV, 1 stream, ~200 kbit/s, $n players" http-flv "$n" 1 "$FIX_200K" "$RAMP" \
    ringcast raw
done
run_case "streams-100x20" "RTMP, 100 streams × 20 players, ~200 kbit/s" rtmp 2000 100 "$FIX_200K" "$RAMP" \
  ringcast nginx-rtmp
run_case "streams-1000x2" "RTMP, 1000 streams × 2 players, ~200 kbit/s" rtmp 2000 1000 "$FIX_200K" "$RAMP" \
  ringcast nginx-rtmp
run_case "shards-200k-2000" "RTMP, 1 vs 2 shards, ~200 kbit/s, 2000 players" rtmp 2000 1 "$FIX_200K" "$RAMP" \
  ringcast-1shard ringcast
run_case "ramp500-200k-2000" "RTMP, 2000 players joining at 500/s, ~200 kbit/s" rtmp 2000 1 "$FIX_200K" 500 \
  ringcast nginx-rtmp
each_rep join_one "join-8000" "RTMP, 200 players joining at 50/s while 8000 play, ~200 kbit/s" 8000 "$FIX_200K" \
  ringcast nginx-rtmp
for n in 2000 5000; do
  run_case "ll-rtmp-200k-$n" "RTMP, merged write off (mw_latency_ms = 0), ~200 kbit/s, $n players" \
    rtmp "$n" 1 "$FIX_200K" "$RAMP" ringcast nginx-rtmp raw
  run_case "ll-flv-200k-$n" "HTTP-FLV, merged write off (mw_latency_ms = 0), ~200 kbit/s, $n players" \
    http-flv "$n" 1 "$FIX_200K" "$RAMP" ringcast raw
done

# ringcast-nagle: the same with `tcp_nodelay = false`, Nagle left on as
# nginx-rtmp leaves it (and SRS by default): the like-for-like CPU figure.
run_case "ll-streams-100x20" "RTMP, merged write off (mw_latency_ms = 0), 100 streams × 20 players, ~200 kbit/s" \
  rtmp 2000 100 "$FIX_200K" "$RAMP" ringcast ringcast-nagle nginx-rtmp
run_case "ll-streams-1000x2" "RTMP, merged write off (mw_latency_ms = 0), 1000 streams × 2 players, ~200 kbit/s" \
  rtmp 2000 1000 "$FIX_200K" "$RAMP" ringcast ringcast-nagle nginx-rtmp
each_rep ingest_one "ingest-1000" "RTMP, 1000 streams published (~200 kbit/s), no players" 1000 "$FIX_200K" \
  ringcast nginx-rtmp
# The merged-write curve: CPU per player-second against the added latency
# the players measure, 2000 players of one stream. ringcast at every point;
# nginx-rtmp (no such knob: it writes each message as it comes) and the raw
# limit (tick = the same ms, 40 for 0) only at the two ends, 0 and 350,
# which bound the curve, to keep the run short.
for ms in 0 40 100 200 350; do
  peers=()
  if [[ $ms == 0 || $ms == 350 ]]; then peers=(nginx-rtmp raw); fi
  run_case "mw-rtmp-$ms" "RTMP, mw_latency_ms = $ms, ~200 kbit/s, 2000 players" \
    rtmp 2000 1 "$FIX_200K" "$RAMP" ringcast "${peers[@]}"
  peers=()
  if [[ $ms == 0 || $ms == 350 ]]; then peers=(raw); fi
  run_case "mw-flv-$ms" "HTTP-FLV, mw_latency_ms = $ms, ~200 kbit/s, 2000 players" \
    http-flv 2000 1 "$FIX_200K" "$RAMP" ringcast "${peers[@]}"
done

log "measurements took $(( (SECONDS - T0) / 60 )) min"

render

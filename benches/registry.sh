#!/usr/bin/env bash
# The stream-registry benchmark: a redis-server and three ringcast origins on
# loopback sharing it ([vhosts.*.cluster.registry] kind = "redis"), then
# `ringcast-bench registry`: 10,000 streams published across the origins, each
# origin's Redis commands/s in steady state, and the lookup latency a player
# sees (HTTP-FLV on an origin without the stream -> 302). Everything it starts
# is stopped when it ends.
#
# Usage: benches/registry.sh [STREAMS] [LOOKUPS]
#   (release builds: cargo build --release -p ringcast-engine -p ringcast-bench)
# Environment: CARGO_TARGET_DIR, BASE_PORT (default 38000), SHARDS (default 0:
# one per CPU), TTL_MS (default 3000).
set -euo pipefail

STREAMS=${1:-10000}
LOOKUPS=${2:-2000}
BASE=${BASE_PORT:-38000}
SHARDS=${SHARDS:-0}
TTL_MS=${TTL_MS:-3000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
S=$TARGET/ringcast
B=$TARGET/ringcast-bench
for bin in "$S" "$B"; do
    [[ -x $bin ]] || { echo "missing $bin: cargo build --release -p ringcast-engine -p ringcast-bench" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "redis-server missing (apt-get install -y redis-server)" >&2; exit 1; }

DIR=$(mktemp -d /tmp/ringcast-registry-bench.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

# each server needs an fd per publisher
ulimit -n "$(ulimit -Hn)"

REDIS_PORT=$((BASE + 379))
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
    >"$DIR/redis.log" 2>&1 &
PIDS+=($!)

APIS=()
for i in 0 1 2; do APIS+=("\"127.0.0.1:$((BASE + 20 + i))\""); done
COWORKERS=$(IFS=,; echo "${APIS[*]}")
ORIGIN_ARGS=()
for i in 0 1 2; do
    rtmp=$((BASE + i)) http=$((BASE + 10 + i)) api=$((BASE + 20 + i))
    cat >"$DIR/origin$i.toml" <<EOF
[server]
shards = $SHARDS
advertise_host = "127.0.0.1"
log_level = "warn"
# publishers of this benchmark publish and then stay idle
idle_timeout_ms = 3600000
publish_first_packet_timeout_ms = 3600000
publish_normal_timeout_ms = 3600000
[rtmp]
listen = ["127.0.0.1:$rtmp"]
[http_server]
listen = ["127.0.0.1:$http"]
[http_api]
enabled = true
listen = ["127.0.0.1:$api"]
[vhosts.__defaultVhost__.cluster]
coworkers = [$COWORKERS]
[vhosts.__defaultVhost__.cluster.registry]
kind = "redis"
url = "redis://127.0.0.1:$REDIS_PORT/0"
ttl_ms = $TTL_MS
EOF
    "$S" -c "$DIR/origin$i.toml" >"$DIR/origin$i.log" 2>&1 &
    PIDS+=($!)
    ORIGIN_ARGS+=(--origin "127.0.0.1:$rtmp,127.0.0.1:$http,127.0.0.1:$api")
done

for port in "$REDIS_PORT" $((BASE + 20)) $((BASE + 21)) $((BASE + 22)); do
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
done

"$B" registry "${ORIGIN_ARGS[@]}" --redis "127.0.0.1:$REDIS_PORT" \
    --streams "$STREAMS" --lookups "$LOOKUPS" --window 10

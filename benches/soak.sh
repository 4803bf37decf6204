#!/usr/bin/env bash
# Soak: the release ringcast on its default configuration (conf/ringcast.toml,
# loopback listeners, max_connections raised for the crowd), one looped
# publisher, and `ringcast-bench soak`: a crowd of players (half RTMP, half
# HTTP-FLV) joining and leaving for the whole duration, with the server's
# RSS and open fds sampled until they all left. See benches/README.md, "Soak".
#
#   benches/soak.sh                          # 1,000 players, 600 s
#   benches/soak.sh --duration 30            # a short run
#   benches/soak.sh --runs 2                 # two soaks back to back on one
#                                            # server: retention vs leak
#   benches/soak.sh --players 500 --min-watch 2 --max-watch 10
#
# Exits non-zero when a soak's verdict fails. Only processes this script
# started are ever stopped, by pid.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
DURATION=600
PLAYERS=1000
RUNS=1
SOAK_ARGS=()

while [[ $# -gt 0 ]]; do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --players) PLAYERS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --min-watch|--max-watch|--sample-every|--tolerance|--drain|--seed|--ramp)
      SOAK_ARGS+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $RUNS =~ ^[1-9]$ ]] || { echo "--runs must be 1..9" >&2; exit 2; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
B=$CARGO_TARGET_DIR/release/ringcast-bench
S=$CARGO_TARGET_DIR/release/ringcast

log() { printf '[soak %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

log "building release binaries into $CARGO_TARGET_DIR"
(cd "$ROOT" && cargo build --release -q -p ringcast-engine -p ringcast-bench)
command -v ffmpeg >/dev/null || { echo "ffmpeg is needed (apt-get install -y ffmpeg)" >&2; exit 1; }

# The server holds one fd per player, the tool up to two per seat while a
# leaving player's socket closes.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited && $NOFILE -lt $((PLAYERS * 2 + 100)) ]]; then
  echo "open-file limit $NOFILE is too low for $PLAYERS players" >&2; exit 1
fi

WORK=$(mktemp -d /tmp/ringcast-soak.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=benches/lib.sh
source "$HERE/lib.sh"

# ~200 kbit/s (H.264 150 kbit/s + AAC 64 kbit/s, GOP 2 s): 1,000 players
# are ~200 Mbit/s of loopback, which 2 shared cores carry with room left.
FIXTURE=$WORK/fixture.flv
ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i testsrc=size=640x360:rate=25 -f lavfi -i sine=frequency=440:sample_rate=44100 \
  -t 10 -c:v libx264 -preset ultrafast -g 50 -pix_fmt yuv420p -b:v 150k \
  -c:a aac -b:a 64k -f flv "$FIXTURE"

# The shipped defaults, except what a loopback soak of this size needs:
# listeners on 127.0.0.1 only, and room for every player and the publisher
# with headroom for connections still closing while their successors arrive
# (a fixed cap: the default one follows the machine's open-files limit).
RTMP_PORT=$(free_port)
HTTP_PORT=$(free_port)
log "ringcast on 127.0.0.1:$RTMP_PORT (RTMP) and :$HTTP_PORT (HTTP-FLV), log in $WORK"
RINGCAST_RTMP_LISTEN="127.0.0.1:$RTMP_PORT" \
RINGCAST_HTTP_SERVER_LISTEN="127.0.0.1:$HTTP_PORT" \
RINGCAST_SERVER_MAX_CONNECTIONS=$((PLAYERS * 2 + 16)) \
  "$S" -c "$ROOT/conf/ringcast.toml" > "$WORK/ringcast.log" 2>&1 &
SPID=$!
PIDS+=("$SPID")
wait_listen "$RTMP_PORT" "$SPID" && wait_listen "$HTTP_PORT" "$SPID" || {
  tail -5 "$WORK/ringcast.log" >&2; exit 1; }

# The publisher outlives every soak: each needs at most its duration, 5 s
# for the first wave, its drain (30 s by default) and its samples.
"$B" publish --url "rtmp://127.0.0.1:$RTMP_PORT/live/soak" --file "$FIXTURE" --loop \
  --duration $((RUNS * (DURATION + 90))) > "$WORK/publish.log" 2>&1 &
PIDS+=("$!")
# Two GOPs, so the server holds one before the baseline and the players.
sleep 4

status=0
for run in $(seq 1 "$RUNS"); do
  log "soak $run of $RUNS: $PLAYERS players for $DURATION s, server pid $SPID"
  "$B" soak --url "rtmp://127.0.0.1:$RTMP_PORT/live/soak" \
    --url "http://127.0.0.1:$HTTP_PORT/live/soak.flv" \
    --players "$PLAYERS" --duration "$DURATION" --server-pid "$SPID" \
    "${SOAK_ARGS[@]}" || status=1
  kill -0 "$SPID" 2>/dev/null || { log "the server exited"; tail -5 "$WORK/ringcast.log" >&2; exit 1; }
done

warnings=$(grep -cE ' (WARN|ERROR) ' "$WORK/ringcast.log" || true)
log "server log: $(wc -l < "$WORK/ringcast.log") lines, $warnings warnings/errors"
grep -E ' (WARN|ERROR) ' "$WORK/ringcast.log" | tail -5 >&2 || true
exit "$status"

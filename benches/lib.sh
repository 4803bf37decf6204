# Shell helpers shared by the benchmark drivers (compare.sh, soak.sh).

# A loopback port nobody listens on, below the ephemeral range the players'
# own sockets come from.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    if [[ -z $(ss -Hltn "sport = :$p" 2>/dev/null) ]]; then echo "$p"; return; fi
  done
}

# wait_listen PORT PID: until PORT listens (0), or PID died / 10 s passed (1).
wait_listen() {
  local i
  for i in $(seq 1 100); do
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

#!/usr/bin/env bash
# Benchmark sessionlab-node (docs/performance.md, "## Node").
#
# 1. Throughput: wrk against GET /api/session with an existing session
#    cookie on the node (1 worker), and against a bare actix-web handler
#    (crates/node/examples/bare.rs, 1 worker) in the same run. Prints both
#    requests/s and the ratio (target >= 0.85). Each server is run ROUNDS
#    times, alternating, and the best round counts (the machine may be busy).
#    Also prints requests per CPU-second of each server process, which other
#    load on the machine disturbs far less than wall-clock requests/s.
# 2. Memory: RSS growth per session for 100,000 sessions of ~200 bytes of
#    data (crates/node/examples/memory_per_session.rs); target < 600 bytes of
#    overhead beyond the data.
#
# Usage: scripts/bench-node.sh [DURATION_SECONDS] [ROUNDS]   (default 5 3)
# Needs: wrk (Debian package wrk). With 2+ cores the server is pinned to
# CPU 0 and wrk to CPU 1 so they do not compete.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-5}
ROUNDS=${2:-3}
CONNS=${BENCH_CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "bench-node.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p sessionlab-node --bins --examples
NODE=target/release/sessionlab-node
BARE=target/release/examples/bare
MEM=target/release/examples/memory_per_session

PIN_SERVER=() PIN_WRK=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN_SERVER=(taskset -c 0) PIN_WRK=(taskset -c 1)
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# wait_for FILE PATTERN: print the first http://... URL of a line matching
# PATTERN in FILE, polling for at most 20 s.
wait_for() {
  local deadline=$((SECONDS + 20))
  while [ $SECONDS -lt $deadline ]; do
    local url
    url=$(grep -m1 "$2" "$1" 2>/dev/null | grep -o 'http://[0-9.:]*' | head -1 || true)
    if [ -n "$url" ]; then echo "$url"; return 0; fi
    sleep 0.1
  done
  echo "bench-node.sh: no '$2' in $1 after 20 s" >&2
  cat "$1" >&2
  exit 1
}

"${PIN_SERVER[@]}" "$NODE" --id bench --listen 127.0.0.1:0 --cluster-listen 127.0.0.1:0 \
  --workers 1 --log info 2>"$tmp/node.log" &
pids+=($!)
"${PIN_SERVER[@]}" "$BARE" 127.0.0.1:0 1 >"$tmp/bare.log" 2>&1 &
pids+=($!)
NODE_URL=$(wait_for "$tmp/node.log" "node started")
BARE_URL=$(wait_for "$tmp/bare.log" "listening on")

# An existing session: log in, count, put something in the cart.
cookie=$(curl -s -o /dev/null -D - -X POST -d 'username=alice&password=sessionlab' "$NODE_URL/login" \
  | grep -i '^set-cookie: SLSESSION=' | sed 's/^[^:]*: //; s/;.*//' | tr -d '\r')
[ -n "$cookie" ] || { echo "bench-node.sh: login failed" >&2; exit 1; }
curl -s -o /dev/null -X POST -H "Cookie: $cookie" "$NODE_URL/api/counter/increment"
curl -s -o /dev/null -X PUT -H "Cookie: $cookie" "$NODE_URL/api/cart/apple?qty=2"
echo "node:  $NODE_URL/api/session  ($(curl -s -H "Cookie: $cookie" "$NODE_URL/api/session" | wc -c) bytes)"
echo "bare:  $BARE_URL/api/session  ($(curl -s "$BARE_URL/api/session" | wc -c) bytes)"

# measure PID URL [HEADER]: one wrk run; prints "REQ_PER_S REQ_PER_CPU_S",
# the second from the server process's CPU time (utime+stime) during the run.
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() {
  local pid=$1 url=$2 args=(-t1 -c"$CONNS" -d"${DURATION}s")
  [ $# -ge 3 ] && args+=(-H "$3")
  local t0 t1 out
  t0=$(cpu_ticks "$pid")
  out=$("${PIN_WRK[@]}" wrk "${args[@]}" "$url")
  t1=$(cpu_ticks "$pid")
  awk -v t0="$t0" -v t1="$t1" -v hz="$TICK" '
    / requests in / {n = $1}
    /Requests\/sec/ {rps = $2}
    END {cpu = (t1 - t0) / hz; printf "%.0f %.0f\n", rps, (cpu > 0 ? n / cpu : 0)}' <<<"$out"
}

node_pid=${pids[0]} bare_pid=${pids[1]}
# Warm up both.
measure "$node_pid" "$NODE_URL/api/session" "Cookie: $cookie" >/dev/null
measure "$bare_pid" "$BARE_URL/api/session" >/dev/null

best_node=0 best_bare=0 best_node_cpu=0 best_bare_cpu=0
max() { awk -v a="$1" -v b="$2" 'BEGIN{print (b>a)?b:a}'; }
for r in $(seq 1 "$ROUNDS"); do
  read -r n ncpu < <(measure "$node_pid" "$NODE_URL/api/session" "Cookie: $cookie")
  read -r b bcpu < <(measure "$bare_pid" "$BARE_URL/api/session")
  echo "round $r: node $n req/s ($ncpu req per CPU-s), bare $b req/s ($bcpu req per CPU-s)"
  best_node=$(max "$best_node" "$n"); best_bare=$(max "$best_bare" "$b")
  best_node_cpu=$(max "$best_node_cpu" "$ncpu"); best_bare_cpu=$(max "$best_bare_cpu" "$bcpu")
done

# The session was read, not rewritten: its version is still the one the cart wrote.
echo "session after the runs: $(curl -s -H "Cookie: $cookie" "$NODE_URL/api/session" | grep -o '"version":"[^"]*"')"

ratio=$(awk -v n="$best_node" -v b="$best_bare" 'BEGIN{printf "%.3f", n/b}')
cpu_ratio=$(awk -v n="$best_node_cpu" -v b="$best_bare_cpu" 'BEGIN{printf "%.3f", n/b}')
echo
echo "GET /api/session, 1 worker, wrk -t1 -c$CONNS -d${DURATION}s, best of $ROUNDS:"
echo "                   req/s (wall)   req per CPU-second of the server"
printf "  sessionlab-node: %-14s %s\n" "$best_node" "$best_node_cpu"
printf "  bare actix-web:  %-14s %s\n" "$best_bare" "$best_bare_cpu"
printf "  ratio:           %-14s %s   (target >= 0.85)\n" "$ratio" "$cpu_ratio"
echo "  (on a busy machine the wall ratio is noisy; the CPU ratio is what a"
echo "   saturated single worker would reach on an idle one)"
echo
echo "Memory per session (MemoryStore, 100000 sessions):"
"$MEM" 100000 | sed 's/^/  /'

#!/usr/bin/env bash
# Benchmark sessionlab-node (docs/performance.md, "## Node").
#
# 1. Throughput: wrk against GET /api/session with an existing session
#    cookie on the node (1 worker), and against a bare actix-web handler
#    (crates/node/examples/bare.rs, 1 worker) in the same run. Prints both
#    requests/s and the ratio (target >= 0.85). Each server is run ROUNDS
#    times, alternating, and the medians are reported (the machine may be
#    busy).
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

rows=()
for r in $(seq 1 "$ROUNDS"); do
  read -r n ncpu < <(measure "$node_pid" "$NODE_URL/api/session" "Cookie: $cookie")
  read -r b bcpu < <(measure "$bare_pid" "$BARE_URL/api/session")
  echo "round $r: node $n req/s ($ncpu req per CPU-s), bare $b req/s ($bcpu req per CPU-s)"
  rows+=("$n $ncpu $b $bcpu")
done

# median COLUMN_EXPR: the median over the rounds of an awk expression.
median() {
  printf '%s\n' "${rows[@]}" | awk "{print $1}" | sort -g | awk '{v[NR]=$1} END {
    if (NR % 2) printf "%.3f", v[(NR+1)/2]; else printf "%.3f", (v[NR/2]+v[NR/2+1])/2 }'
}

# The session was read, not rewritten: its version is still the one the cart wrote.
echo "session after the runs: $(curl -s -H "Cookie: $cookie" "$NODE_URL/api/session" | grep -o '"version":"[^"]*"')"

echo
echo "GET /api/session, 1 worker, wrk -t1 -c$CONNS -d${DURATION}s, median of $ROUNDS rounds:"
echo "                   req/s (wall)   req per CPU-second of the server"
printf "  sessionlab-node: %-14.0f %.0f\n" "$(median '$1')" "$(median '$2')"
printf "  bare actix-web:  %-14.0f %.0f\n" "$(median '$3')" "$(median '$4')"
printf "  ratio:           %-14s %s   (target >= 0.85)\n" "$(median '$1/$3')" "$(median '$2/$4')"
echo "  (ratios are medians of the per-round ratios; on a busy machine the"
echo "   wall ratio is noisy, the CPU ratio much less so)"
echo
echo "Memory per session (MemoryStore, 100000 sessions):"
"$MEM" 100000 | sed 's/^/  /'

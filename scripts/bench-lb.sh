#!/usr/bin/env bash
# Benchmark: sessionlab-lb (sticky-cookie) against HAProxy (cookie SRV insert
# indirect nocache) in front of the same three backends, driven by wrk with
# the same threads, connections and duration, the cookie pinned to one
# backend. Prints requests/s and p50/p99 side by side with the ratio
# sessionlab-lb / HAProxy. A benchmark, not a test: figures depend on the
# machine (see docs/performance.md).
#
#   scripts/bench-lb.sh                 # threads 1 and 2, 3 rounds of 8 s
#   THREADS="1" DURATION=5s ROUNDS=1 CONNECTIONS=64 RAW=1 scripts/bench-lb.sh
#
# Besides requests/s and latency it prints the proxy's CPU time per request
# (user + system, from /proc): on a machine shared with other work, the
# throughput of a run depends on what else is running, the CPU cost of a
# request much less.
#
# Backends are sessionlab-echo (a test tool in crates/lb: answers every
# request with X-Served-By and a small body) so the backends cost little and
# the proxies are what is measured. Everything listens on 127.0.0.1 only.
#
# The TLS part (PARTS="plain tls", the default; PARTS=tls for it alone)
# puts the same proxies in front of the same backends terminating HTTPS
# with the same certificate (ECDSA P-256, made with openssl in the scratch
# folder): HAProxy `bind ... ssl crt PEM` (OpenSSL) against sessionlab-lb
# `--tls-listen` (rustls on aws-lc-rs), in two cells:
#
#   handshake   wrk with `Connection: close`: a new TCP connection and a full
#               TLS handshake for every request (wrk resumes no TLS session),
#               so requests/s is handshakes/s
#   keepalive   requests/s on kept-alive HTTPS connections: the handshakes
#               happen once, what is measured is encrypting the traffic
#
#   PARTS=tls THREADS="1 2" TLS_DURATION=4s ROUNDS=3 scripts/bench-lb.sh
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-"1 2"}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
HAPROXY_PORT=${HAPROXY_PORT:-18090}
LB_PORT=${LB_PORT:-18091}
LB_ADMIN_PORT=${LB_ADMIN_PORT:-18092}
HAPROXY_TLS_PORT=${HAPROXY_TLS_PORT:-18093}
LB_TLS_PORT=${LB_TLS_PORT:-18094}
PARTS=${PARTS:-"plain tls"}
TLS_DURATION=${TLS_DURATION:-4s}
TLS_WARMUP=${TLS_WARMUP:-1s}
PINNED=node-2
PLAIN=; TLS=
for part in $PARTS; do
  case "$part" in
    plain) PLAIN=1 ;;
    tls) TLS=1 ;;
    *) echo "bench-lb: PARTS takes plain and tls (got '$part')"; exit 2 ;;
  esac
done

# --- tools: the same Debian packages as scripts/test.sh ----------------------
missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "bench-lb: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --quiet -p sessionlab-lb --features echo --bins
BIN=${CARGO_TARGET_DIR:-target}/release

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$HAPROXY_PORT" "$LB_PORT" "$LB_ADMIN_PORT" "$HAPROXY_TLS_PORT" "$LB_TLS_PORT"; do
  port_free "$p" || { echo "bench-lb: port $p is busy (set HAPROXY_PORT/LB_PORT/LB_ADMIN_PORT/HAPROXY_TLS_PORT/LB_TLS_PORT)"; exit 2; }
done

# One certificate for both proxies: sessionlab-lb reads cert and key,
# HAProxy one PEM holding both.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/haproxy.pem"

# Wait (bounded) until a URL answers 200.
wait_ready() {
  for _ in $(seq 1 100); do
    if { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null; then
      printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
      if head -1 <&3 | grep -q ' 200 '; then exec 3<&-; return 0; fi
      exec 3<&-
    fi
    sleep 0.1
  done
  echo "bench-lb: nothing answered on port $1; server log:"; cat "$WORK"/haproxy.log "$WORK"/lb.log 2>/dev/null | tail -20; exit 1
}

# --- three backends on free ports ---------------------------------------------
declare -A BACKEND
for id in node-1 node-2 node-3; do
  "$BIN/sessionlab-echo" --id "$id" --listen 127.0.0.1:0 --threads 1 >"$WORK/$id.out" &
  PIDS+=($!)
done
for id in node-1 node-2 node-3; do
  for _ in $(seq 1 100); do grep -q 'listening on' "$WORK/$id.out" && break; sleep 0.05; done
  BACKEND[$id]=$(sed -n 's/^listening on //p' "$WORK/$id.out")
  [ -n "${BACKEND[$id]}" ] || { echo "bench-lb: $id did not start"; exit 1; }
done

haproxy_cfg() { # $1 = threads, $2 = tls for the HTTPS frontend as well
  cat <<EOF
global
    nbthread $1
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
frontend public
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend nodes
EOF
  if [ "${2:-}" = tls ]; then
    # What sessionlab-lb does on its HTTPS listener: X-Forwarded-Proto https, HSTS.
    cat <<EOF
frontend public_tls
    bind 127.0.0.1:$HAPROXY_TLS_PORT ssl crt $WORK/haproxy.pem
    http-request set-header X-Forwarded-Proto https
    http-response set-header Strict-Transport-Security max-age=31536000
    default_backend nodes_tls
EOF
    haproxy_backend nodes_tls
  fi
  haproxy_backend nodes http
}

# haproxy_backend NAME [PROTO]: the three nodes with cookie-insert
# stickiness; PROTO sets X-Forwarded-Proto (the HTTPS frontend sets its own).
haproxy_backend() {
  echo "backend $1"
  echo "    balance roundrobin"
  echo "    cookie SRV insert indirect nocache"
  echo "    option forwardfor"
  [ -z "${2:-}" ] || echo "    http-request set-header X-Forwarded-Proto $2"
  echo "    http-request set-header X-Forwarded-Host %[req.hdr(host)]"
  echo "    option httpchk GET /healthz"
  for id in node-1 node-2 node-3; do
    echo "    server $id ${BACKEND[$id]} cookie $id check inter 1s rise 2 fall 3"
  done
}

start_haproxy() { # $1 = threads, $2 = tls for the HTTPS frontend as well
  haproxy_cfg "$1" "${2:-}" >"$WORK/haproxy.cfg"
  haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  wait_ready "$HAPROXY_PORT"
}

start_lb() { # $1 = threads, $2 = tls for the HTTPS listener as well
  local tls=()
  if [ "${2:-}" = tls ]; then
    tls=(--tls-listen "127.0.0.1:$LB_TLS_PORT" --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
  fi
  "$BIN/sessionlab-lb" --threads "$1" --strategy sticky-cookie "${tls[@]}" \
    --listen "127.0.0.1:$LB_PORT" --admin-listen "127.0.0.1:$LB_ADMIN_PORT" \
    --backend "node-1=${BACKEND[node-1]}" --backend "node-2=${BACKEND[node-2]}" \
    --backend "node-3=${BACKEND[node-3]}" >"$WORK/lb.log" 2>&1 &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  wait_ready "$LB_PORT"
}

stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }

# One wrk run against the server started last; appends
# "rps p50_ms p99_ms cpu_us_per_request" to $WORK/<name>.t<threads>.
# Plain HTTP unless $5 = https ($6 = extra header, $7/$8 = duration/warm-up).
measure() { # $1 = port, $2 = cookie, $3 = threads, $4 = name [, $5 $6 $7 $8]
  local scheme=${5:-http} duration=${7:-$DURATION} warmup=${8:-$WARMUP}
  local url="$scheme://127.0.0.1:$1/" extra=()
  [ -n "${6:-}" ] && extra=(-H "$6")
  # Check the pinning: the response must come from $PINNED.
  local served
  if [ "$scheme" = https ]; then
    served=$(curl -sk --max-time 5 -o /dev/null -D - -H "Cookie: $2" "$url" | grep -i '^x-served-by' | tr -d '\r' | awk '{print $2}')
  else
    served=$(exec 3<>"/dev/tcp/127.0.0.1/$1"; printf 'GET / HTTP/1.0\r\nCookie: %s\r\n\r\n' "$2" >&3; grep -i '^x-served-by' <&3 | tr -d '\r' | awk '{print $2}')
  fi
  [ "$served" = "$PINNED" ] || { echo "bench-lb: cookie did not pin to $PINNED (got '$served')" >&2; exit 1; }
  wrk -t "$3" -c "$CONNECTIONS" -d "$warmup" -H "Cookie: $2" "${extra[@]}" "$url" >/dev/null
  # CPU time of the proxy process (user + system, in clock ticks).
  local ticks0 ticks1
  ticks0=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
  wrk -t "$3" -c "$CONNECTIONS" -d "$duration" --latency -H "Cookie: $2" "${extra[@]}" "$url" >"$WORK/wrk.out"
  ticks1=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
  if grep -q 'Non-2xx\|Socket errors' "$WORK/wrk.out"; then
    echo "bench-lb: errors during the run:" >&2; grep 'Non-2xx\|Socket errors' "$WORK/wrk.out" >&2
  fi
  awk -v ticks=$((ticks1 - ticks0)) -v hz="$(getconf CLK_TCK)" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /requests in/ { n = $1 }
    /Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f %.2f\n", rps, p50, p99, ticks * 1e6 / hz / n }' "$WORK/wrk.out" >>"$WORK/$4.t$3"
}

# The median of column $2 in file $1.
median() { awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

ratios() { # $1 = haproxy file, $2 = lb file, $3 = row label
  local h_rps h_p50 h_p99 h_cpu l_rps l_p50 l_p99 l_cpu
  h_rps=$(median "$1" 1); h_p50=$(median "$1" 2); h_p99=$(median "$1" 3); h_cpu=$(median "$1" 4)
  l_rps=$(median "$2" 1); l_p50=$(median "$2" 2); l_p99=$(median "$2" 3); l_cpu=$(median "$2" 4)
  awk -v t="$3" -v hr="$h_rps" -v h5="$h_p50" -v h9="$h_p99" -v hc="$h_cpu" \
      -v lr="$l_rps" -v l5="$l_p50" -v l9="$l_p99" -v lc="$l_cpu" \
    'BEGIN { printf "%-13s | %8s %7s %7s %9s | %8s %7s %7s %9s | %5.2fx %7.2fx %6.2fx\n", t, hr, h5, h9, hc, lr, l5, l9, lc, lr / hr, l9 / h9, lc / hc }'
}
header() {
  printf '%-13s | %-34s | %-34s | %-23s\n' "" "HAProxy" "sessionlab-lb" "lb / HAProxy"
  printf '%-13s | %8s %7s %7s %9s | %8s %7s %7s %9s | %6s %8s %7s\n' "$1" "req/s" "p50 ms" "p99 ms" "cpu us/r" "req/s" "p50 ms" "p99 ms" "cpu us/r" "req/s" "p99" "cpu/r"
}

echo "backends: node-1=${BACKEND[node-1]} node-2=${BACKEND[node-2]} node-3=${BACKEND[node-3]}"
echo "wrk: $CONNECTIONS connections, cookie pinned to $PINNED; parts: $PARTS"
[ -z "$PLAIN" ] || echo "plain: ${DURATION} per run after ${WARMUP} warm-up"
[ -z "$TLS" ] || echo "tls: ${TLS_DURATION} per run after ${TLS_WARMUP} warm-up, ECDSA P-256 certificate"
echo "rounds: $ROUNDS per configuration, alternating HAProxy and sessionlab-lb; medians shown"
echo "haproxy: $(haproxy -v | head -1)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in $THREADS; do
  for round in $(seq 1 "$ROUNDS"); do
    if [ -n "$PLAIN" ]; then
      start_haproxy "$t"; measure "$HAPROXY_PORT" "SRV=$PINNED" "$t" haproxy; stop_server
      start_lb "$t"; measure "$LB_PORT" "SLROUTE=$PINNED" "$t" lb; stop_server
    fi
    if [ -n "$TLS" ]; then
      start_haproxy "$t" tls
      measure "$HAPROXY_TLS_PORT" "SRV=$PINNED" "$t" haproxy-handshake https "Connection: close" "$TLS_DURATION" "$TLS_WARMUP"
      measure "$HAPROXY_TLS_PORT" "SRV=$PINNED" "$t" haproxy-keepalive https "" "$TLS_DURATION" "$TLS_WARMUP"
      stop_server
      start_lb "$t" tls
      measure "$LB_TLS_PORT" "SLROUTE=$PINNED" "$t" lb-handshake https "Connection: close" "$TLS_DURATION" "$TLS_WARMUP"
      measure "$LB_TLS_PORT" "SLROUTE=$PINNED" "$t" lb-keepalive https "" "$TLS_DURATION" "$TLS_WARMUP"
      stop_server
    fi
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$PLAIN" ]; then
  echo; echo "plain HTTP"
  header threads
  for t in $THREADS; do ratios "$WORK/haproxy.t$t" "$WORK/lb.t$t" "$t"; done
fi
if [ -n "$TLS" ]; then
  echo; echo "HTTPS (handshake: one full TLS handshake per request, so req/s = handshakes/s)"
  header "threads cell"
  for t in $THREADS; do
    for cell in handshake keepalive; do
      ratios "$WORK/haproxy-$cell.t$t" "$WORK/lb-$cell.t$t" "$t $cell"
    done
  done
fi
if [ -n "${RAW:-}" ]; then
  echo; echo "raw runs (rps p50 p99 cpu_us_per_request):"
  for f in "$WORK"/*.t*; do echo "$(basename "$f"):"; sed 's/^/  /' "$f"; done
fi

#!/usr/bin/env bash
# Makes docs/images/dashboard.png: a sticky-replicated cluster on free
# ports, three users writing for about three minutes (so the charts have
# a history), node-3 partitioned for the last half minute, then a
# screenshot of the dashboard with headless Chromium. Everything stays on
# 127.0.0.1 and stops by itself; the cluster is taken down at the end.
#
#   scripts/dashboard-screenshot.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-docs/images/dashboard.png}")
command -v chromium >/dev/null || { echo "needs chromium (apt-get install chromium)" >&2; exit 1; }
cargo build -q -p sessionlab-node -p sessionlab-lb -p sessionlab-dashboard -p sessionlab-lab --bins
S=$PWD/target/debug/sessionlab
run=$(mktemp -d)
export SESSIONLAB_RUN_DIR=$run/run SESSIONLAB_LB_PORT=0 SESSIONLAB_ADMIN_PORT=0 \
       SESSIONLAB_DASHBOARD_PORT=0 SESSIONLAB_NODE_PORT=0 SESSIONLAB_CLUSTER_PORT=0
cleanup() { "$S" down >/dev/null 2>&1 || true; rm -rf "$run"; }
trap cleanup EXIT
"$S" up --mode sticky-replicated --nodes 3 >/dev/null
port() { python3 -c "import json,sys;print(json.load(open('$SESSIONLAB_RUN_DIR/cluster.json'))[sys.argv[1]]['port'])" "$1"; }
app=http://127.0.0.1:$(port lb)
dashboard=http://127.0.0.1:$(port dashboard)

# user NAME JAR SECONDS PAUSE: log in, then increment and read until time is up.
user() {
  local jar=$run/jar.$2 end=$((SECONDS + $3)) n=0
  curl -s -c "$jar" -b "$jar" -H 'Accept: application/json' \
       -d "username=$1&password=sessionlab" "$app/login" >/dev/null
  while [ $SECONDS -lt $end ] && [ $n -lt 5000 ]; do
    curl -s -c "$jar" -b "$jar" -X POST -H 'Accept: application/json' "$app/api/counter/increment" >/dev/null
    curl -s -c "$jar" -b "$jar" "$app/api/session" >/dev/null
    n=$((n + 1)); sleep "$4"
  done
}
echo "writing for about three minutes (dashboard: $dashboard/) ..."
user alice a1 200 0.25 & user bob b1 200 0.4 & user carol c1 200 0.5 &
sleep 60
user alice a2 140 0.3 & user bob b2 140 0.6 &
sleep 60
user carol c2 80 0.2 &
sleep 30
"$S" partition node-3
sleep 25
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --no-proxy-server \
  --window-size=1440,1330 --virtual-time-budget=3000 --screenshot="$out" "$dashboard/dashboard" 2>/dev/null
wait
echo "wrote $out"

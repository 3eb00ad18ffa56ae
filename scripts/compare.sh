#!/usr/bin/env bash
# Regenerate docs/results/ from a real run of `sessionlab compare` on this
# machine (release build).
#
# Two comparisons, each a fresh cluster per mode on free loopback ports:
#
# 1. docs/results/: every mode the build can start, the default workload
#    (3 nodes, 50 users, 50 ms think time, 20 s) and node-2 killed halfway.
#    What each mode loses when a node dies.
# 2. docs/results/lag/: the replicated modes with users that send their
#    requests back to back (think time 0, 500 ms after a login) while every
#    replication link is delayed by 5 ms (so a copy arrives ~10+ ms after
#    the write): what asynchronous replication does to a user who is faster
#    than the copies, and what --replication-ack all (replicated+ack-all)
#    costs to prevent it.
# 3. docs/results/tabs/: two tabs per user (--clients-per-user 2) sharing
#    one cookie, incrementing back to back, no fault: the lost update of
#    whole-session writes, on one node (sticky) as well as across copies.
#
# Every comparison's histories are checked for the session guarantees; the
# counterexample pictures are kept (history-MODE-counterexamples/), the
# histories themselves (megabytes) are not.
#
# Then scripts/compare-readme.py writes docs/results/README.md from the
# three report.json files: every number in it is from this run.
#
# Usage: scripts/compare.sh [DURATION] [USERS]   (default 20s 50; the lag
# comparison uses 15s and 20 users). Takes about 5 minutes after the build.
# Needs: python3 (for the README).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-20s}
USERS=${2:-50}
command -v python3 >/dev/null || { echo "compare.sh: python3 is not installed" >&2; exit 1; }

cargo build --release -q -p sessionlab-lab -p sessionlab-node -p sessionlab-lb -p sessionlab-dashboard --bins
LAB=target/release/sessionlab
OUT=docs/results

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$LAB" compare --duration "$DURATION" --users "$USERS" --out "$work/kill"
"$LAB" compare --modes replicated,replicated+ack-all,sticky-replicated \
  --duration 15s --users 20 --think 0ms --login-pause 500ms \
  --fault delay:5ms@0s --out "$work/lag"
"$LAB" compare --modes sticky,sticky-replicated,replicated \
  --duration 15s --users 20 --clients-per-user 2 --think 0ms --login-pause 500ms \
  --mix read=40,increment=60 --no-faults --out "$work/tabs"

mkdir -p "$OUT/lag" "$OUT/tabs"
rm -rf "$OUT"/history-*-counterexamples "$OUT"/lag/history-*-counterexamples "$OUT"/tabs/history-*-counterexamples
for f in report.md report.json latency_p99.svg errors.svg losses.svg; do
  cp "$work/kill/$f" "$OUT/$f"
  cp "$work/lag/$f" "$OUT/lag/$f"
  cp "$work/tabs/$f" "$OUT/tabs/$f"
done
for run in kill lag tabs; do
  dest="$OUT"; [ "$run" != kill ] && dest="$OUT/$run"
  for d in "$work/$run"/history-*-counterexamples; do
    [ -d "$d" ] && cp -r "$d" "$dest/"
  done
done

scripts/compare-readme.py "$OUT"
echo "compare.sh: wrote $OUT/ (report.md, report.json, charts, lag/, tabs/, README.md)"

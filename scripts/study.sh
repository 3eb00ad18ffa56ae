#!/usr/bin/env bash
# Regenerate docs/results/scale/ and docs/results/churn/ from real runs of
# `sessionlab study` on this machine.
#
# 1. docs/results/scale/: `study scale`, every mode below at the sizes
#    given (default 2,4,8), the same load per node (5 users, 20 requests
#    per second per node, 4 s per cell), node-1 SIGKILLed after each load.
# 2. docs/results/churn/1-2/: `study churn --from 1 --to 2`, the
#    ingress-nginx case (one pod scaled to two): which users land on the
#    new node, per strategy.
# 3. docs/results/churn/4-5/: `study churn --from 4 --to 5`, every strategy
#    variant, sessions on one node (sticky) and copied everywhere
#    (sticky-replicated).
#
# The reading (docs/results/scale/README.md) is written by hand from the
# numbers of the run; rerunning changes the numbers, so read them again.
#
# Usage: scripts/study.sh [SIZES] [PROFILE]  (default 2,4,8 debug; about
# 6 minutes on 2 cores after the build).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${1:-2,4,8}
profile=${2:-debug}
if [ "$profile" = release ]; then
    cargo build --release --workspace --bins
else
    cargo build --workspace --bins
fi
bin=target/$profile
export SESSIONLAB_BIN_DIR=$bin
out=docs/results
mkdir -p "$out/scale" "$out/churn/1-2" "$out/churn/4-5"

"$bin/sessionlab" study scale --nodes "$sizes" \
    --modes local,sticky,replicated,sticky-replicated,redis \
    --duration 4s --out "$out/scale"
"$bin/sessionlab" study churn --from 1 --to 2 --modes sticky \
    --strategies round-robin,sticky-cookie,consistent-hash,maglev \
    --users 100 --out "$out/churn/1-2"
"$bin/sessionlab" study churn --from 4 --to 5 --modes sticky,sticky-replicated \
    --users 100 --out "$out/churn/4-5"
echo "scripts/study.sh: sizes $sizes ($profile build); reports in $out/scale and $out/churn"

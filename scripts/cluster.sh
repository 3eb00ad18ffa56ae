#!/usr/bin/env bash
# Start, inspect and stop a local sessionlab cluster with the common defaults.
#
#   scripts/cluster.sh up [--mode sticky-replicated] [--nodes 3]   build, then start
#   scripts/cluster.sh status | down | kill node-2 | partition node-1 | heal | logs ...
#
# Any `sessionlab` subcommand works; see `scripts/cluster.sh --help`.
# `up` builds the node, the LB, the dashboard and the lab first (release profile; set
# SESSIONLAB_PROFILE=dev for a faster, unoptimized build). The cluster state
# and logs live in .sessionlab/ at the top of the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${SESSIONLAB_PROFILE:-release}
case "$profile" in
  dev|debug) profile=dev; dir=debug ;;
  release) dir=release ;;
  *) echo "cluster.sh: SESSIONLAB_PROFILE must be release or dev, not '$profile'" >&2; exit 2 ;;
esac
target=${CARGO_TARGET_DIR:-target}
bin="$target/$dir/sessionlab"

cmd=${1:-up}
if [ "$cmd" = up ] || [ ! -x "$bin" ]; then
  cargo build --quiet --profile "$profile" -p sessionlab-node -p sessionlab-lb -p sessionlab-dashboard -p sessionlab-lab --bins
fi
[ $# -gt 0 ] && shift
exec "$bin" "$cmd" "$@"

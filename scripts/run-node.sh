#!/usr/bin/env bash
# Build and run one sessionlab-node in the foreground (Ctrl-C stops it).
#
#   scripts/run-node.sh                      app on 127.0.0.1:8081, cluster port 9081
#   scripts/run-node.sh --tracking url       any sessionlab-node flag is passed on
#
# Then open the printed URL and log in as alice, bob or carol (password
# sessionlab). For a whole cluster behind the load balancer see
# scripts/cluster.sh and docs/tutorial.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p sessionlab-node --bin sessionlab-node
exec target/release/sessionlab-node "$@"

#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs the
# format check, clippy with warnings as errors, and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- system packages the tests and benchmarks use -------------------------
# binary -> Debian package
declare -A PKG=(
  [redis-server]=redis-server
  [redis-sentinel]=redis-sentinel
  [haproxy]=haproxy
  [nginx]=nginx
  [wrk]=wrk
  [chromium]=chromium
  # the dashboard test's connection as another user
  [curl]=curl
)
missing=()
for bin in "${!PKG[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${PKG[$bin]}")
done
# The container test drives docker-compose, when there is an engine to use.
if docker info >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  missing+=(docker-compose)
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "test.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Python tools ---------------------------------------------------------------
# The offline Kubernetes schema validator (crates/lab/tests/kubernetes.rs).
if ! python3 -c "import kubernetes_validate" >/dev/null 2>&1; then
  echo "test.sh: installing kubernetes-validate (pip)"
  python3 -m pip install -q kubernetes-validate 2>/dev/null \
    || python3 -m pip install -q --break-system-packages kubernetes-validate
fi

# --- Rust checks ------------------------------------------------------------
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# End-to-end tests start the real binaries from target/debug.
cargo build --workspace --bins --locked
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# --- container end-to-end test (crates/lab/tests/docker.rs) -------------------
# Needs a Docker engine: builds the image from the binaries just built (no
# pull), then runs the compose test. Without an engine it is skipped, loudly.
if docker info >/dev/null 2>&1; then
  SESSIONLAB_PROFILE=dev SESSIONLAB_IMAGE=sessionlab:test scripts/docker-up.sh build
  if cargo nextest --version >/dev/null 2>&1; then
    SESSIONLAB_DOCKER_IMAGE=sessionlab:test cargo nextest run -p sessionlab-lab --locked --test docker --run-ignored only --no-capture
  else
    SESSIONLAB_DOCKER_IMAGE=sessionlab:test cargo test -p sessionlab-lab --locked --test docker -- --ignored --nocapture
  fi
else
  echo "test.sh: SKIPPED the container end-to-end test (crates/lab/tests/docker.rs): no Docker engine here (docker info failed)"
fi

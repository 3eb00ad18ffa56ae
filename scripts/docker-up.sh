#!/usr/bin/env bash
# Run the sessionlab topologies as containers, on machines that can't pull
# images too.
#
#   scripts/docker-up.sh [up] [MODE]   build the image, start MODE (default sticky-replicated)
#   scripts/docker-up.sh build         only build (and verify) the image
#   scripts/docker-up.sh down          stop and remove the containers and the network
#
# The image is the Dockerfile's `prebuilt` stage: the binaries compiled on
# this machine (cargo, SESSIONLAB_PROFILE=release|dev) on a runtime base image
# made here from scratch out of the shared libraries those binaries load
# (ldd) and a minimal /etc. Nothing is pulled. After building, the binaries
# are copied back out of the image and compared with the host's, so the image
# is known to hold exactly what this machine built.
#
# Secrets (cluster secret, LB admin token) are generated once into
# .sessionlab/docker.env (mode 0600) and reused by later runs.
#
# Environment: SESSIONLAB_PROFILE (release), SESSIONLAB_IMAGE (sessionlab:local),
# SESSIONLAB_COMPOSE_PROJECT (sessionlab), SESSIONLAB_LB_PORT (8080),
# SESSIONLAB_ADMIN_PORT (8079).
set -euo pipefail
cd "$(dirname "$0")/.."

MODES="local sticky replicated sticky-replicated"
image=${SESSIONLAB_IMAGE:-sessionlab:local}
base=${image%%:*}-base:local
project=${SESSIONLAB_COMPOSE_PROJECT:-sessionlab}
profile=${SESSIONLAB_PROFILE:-release}
case "$profile" in
  dev|debug) profile=dev; bindir=${CARGO_TARGET_DIR:-target}/debug ;;
  release) bindir=${CARGO_TARGET_DIR:-target}/release ;;
  *) echo "docker-up.sh: SESSIONLAB_PROFILE must be release or dev, not '$profile'" >&2; exit 2 ;;
esac
BINS="sessionlab-node sessionlab-lb sessionlab"
stage=docker/prebuilt   # the Dockerfile's `prebuilt` stage copies this folder

say() { echo "docker-up.sh: $*" >&2; }
die() { say "$*"; exit 1; }

compose() { docker-compose -p "$project" "$@"; }
all_profiles() { for m in $MODES; do printf -- '--profile %s ' "$m"; done; }

build_base() {
  # A runtime root file system: the dynamic loader and every library the
  # binaries load, a passwd/group with `nobody`, /tmp, and nsswitch.conf so
  # service names resolve through Docker's DNS.
  local root; root=$(mktemp -d)
  mkdir -p "$root/etc" "$root/tmp" "$root/usr/local/bin"
  chmod 1777 "$root/tmp"
  local libs
  libs=$(for b in $BINS; do ldd "$stage/$b"; done | grep -o '/[^ ]*' | sort -u)
  for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  # The loader path the binaries ask for, e.g. /lib64/ld-linux-x86-64.so.2.
  local interp
  interp=$(readelf -l "$stage/sessionlab-node" | sed -n 's/.*interpreter: \(.*\)]/\1/p')
  if [ -n "$interp" ] && [ ! -e "$root$interp" ]; then
    mkdir -p "$root$(dirname "$interp")"
    cp -L "$interp" "$root$interp"
  fi
  printf 'root:x:0:0:root:/:/nonexistent\nnobody:x:65534:65534:nobody:/:/nonexistent\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  tar -C "$root" -c . | docker import - "$base" >/dev/null
  rm -rf "$root"
  say "base image $base: $(echo "$libs" | wc -w) shared libraries from this machine"
}

build() {
  docker info >/dev/null 2>&1 || die "no Docker engine reachable (docker info failed)"
  command -v docker-compose >/dev/null || die "docker-compose is not installed"
  say "building the binaries (cargo, $profile profile)"
  cargo build --quiet --profile "$profile" -p sessionlab-node -p sessionlab-lb -p sessionlab-lab --bins
  # Stage copies at once: the target folder may be rebuilt meanwhile.
  for b in $BINS; do cp "$bindir/$b" "$stage/"; done
  build_base
  local old; old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  # The classic builder: this stage needs nothing BuildKit adds, and it works
  # where the buildx plugin is missing. Its output is shown only on failure.
  local log; log=$(mktemp)
  DOCKER_BUILDKIT=0 docker build --target prebuilt --build-arg RUNTIME_IMAGE="$base" -t "$image" . >"$log" 2>&1 \
    || { cat "$log" >&2; rm -f "$log"; die "docker build failed"; }
  rm -f "$log"
  verify
  for b in $BINS; do rm -f "$stage/$b"; done
  # The image this tag named before is now dangling: remove it (if unused).
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
}

verify() {
  # Copy the binaries back out of the image and compare them with the host's.
  local cid out; out=$(mktemp -d)
  cid=$(docker create "$image")
  for b in $BINS; do docker cp -q "$cid:/usr/local/bin/$b" "$out/$b"; done
  docker rm -f "$cid" >/dev/null
  for b in $BINS; do
    cmp -s "$stage/$b" "$out/$b" || { rm -rf "$out"; die "$image holds a different $b than was built here"; }
  done
  rm -rf "$out"
  say "image $image verified: its binaries are byte-identical to the ones just built in $bindir (sessionlab-node sha256 $(sha256sum "$stage/sessionlab-node" | cut -c1-12)...)"
}

secrets() {
  mkdir -p .sessionlab && chmod 700 .sessionlab
  local env=.sessionlab/docker.env
  if [ ! -s "$env" ]; then
    (umask 077; {
      echo "SESSIONLAB_CLUSTER_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
      echo "SESSIONLAB_ADMIN_TOKEN=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    } >"$env")
  fi
  set -a; . "$env"; set +a
}

up() {
  local mode=${1:-sticky-replicated}
  case " $MODES " in *" $mode "*) ;; *) die "unknown mode '$mode'; modes: $MODES" ;; esac
  build
  secrets
  export SESSIONLAB_IMAGE=$image
  local began=$SECONDS
  compose --profile "$mode" up -d --no-build --remove-orphans
  local lb=127.0.0.1:${SESSIONLAB_LB_PORT:-8080} admin=127.0.0.1:${SESSIONLAB_ADMIN_PORT:-8079}
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null -H "Authorization: Bearer $SESSIONLAB_ADMIN_TOKEN" "http://$admin/admin/v1/backends" \
        && [ "$(curl -fsS -H "Authorization: Bearer $SESSIONLAB_ADMIN_TOKEN" "http://$admin/admin/v1/backends" | grep -o '"state":"up"' | wc -l)" -ge 3 ]; do
    [ $SECONDS -lt $deadline ] || { compose --profile "$mode" logs --tail 20 >&2; die "not healthy after 60 s"; }
    sleep 0.5
  done
  cat <<EOF
containers up and healthy in $((SECONDS - began)) s: mode $mode, 3 nodes (compose project $project)
  app     http://$lb/  (log in as alice, bob or carol; password sessionlab)
  admin   http://$admin/  (Authorization: Bearer \$SESSIONLAB_ADMIN_TOKEN from .sessionlab/docker.env)
  try     docker-compose -p $project ps
          docker-compose -p $project kill $mode-node-2          # a node dies
          docker network disconnect ${project}_lab ${project}_$mode-node-3_1   # cut a node off
          scripts/docker-up.sh down
EOF
}

down() {
  docker info >/dev/null 2>&1 || die "no Docker engine reachable (docker info failed)"
  export SESSIONLAB_IMAGE=$image
  # shellcheck disable=SC2046
  compose $(all_profiles) down --remove-orphans --timeout 5
}

case "${1:-up}" in
  up) shift || true; up "$@" ;;
  build) build ;;
  down) down ;;
  local|sticky|replicated|sticky-replicated) up "$1" ;;
  *) die "usage: scripts/docker-up.sh [up] [MODE] | build | down  (modes: $MODES)" ;;
esac

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
# Modes: local, sticky, replicated, sticky-replicated, redis, redis-ha, jwt,
# backup (one `node` service started at 3 replicas, found by DNS; grow it
# with `docker-compose -p sessionlab --profile backup up -d --scale node=5`).
# For `redis` and `redis-ha` the Redis services' image is made the same way from this machine's
# redis-server (apt-get install redis-server) and its shared libraries,
# unless SESSIONLAB_REDIS_IMAGE names one (e.g. redis:7-alpine, if you can
# pull it). `build` makes the sessionlab image only.
#
# Secrets (cluster secret, LB admin token, JWT signing secret) are generated
# once into .sessionlab/docker.env (mode 0600) and reused by later runs.
#
# Environment: SESSIONLAB_PROFILE (release), SESSIONLAB_IMAGE (sessionlab:local),
# SESSIONLAB_REDIS_IMAGE (made here: sessionlab-redis:local),
# SESSIONLAB_COMPOSE_PROJECT (sessionlab), SESSIONLAB_LB_PORT (8080),
# SESSIONLAB_DASHBOARD_PORT (8079), SESSIONLAB_ADMIN_PORT (8078, the LB's admin API).
set -euo pipefail
cd "$(dirname "$0")/.."

MODES="local sticky replicated sticky-replicated redis redis-ha jwt backup"
image=${SESSIONLAB_IMAGE:-sessionlab:local}
base=${image%%:*}-base:local
redis_image=${image%%:*}-redis:local
project=${SESSIONLAB_COMPOSE_PROJECT:-sessionlab}
profile=${SESSIONLAB_PROFILE:-release}
case "$profile" in
  dev|debug) profile=dev; bindir=${CARGO_TARGET_DIR:-target}/debug ;;
  release) bindir=${CARGO_TARGET_DIR:-target}/release ;;
  *) echo "docker-up.sh: SESSIONLAB_PROFILE must be release or dev, not '$profile'" >&2; exit 2 ;;
esac
BINS="sessionlab-node sessionlab-lb sessionlab-dashboard sessionlab"
stage=docker/prebuilt   # the Dockerfile's `prebuilt` stage copies this folder

say() { echo "docker-up.sh: $*" >&2; }
die() { say "$*"; exit 1; }

compose() { docker-compose -p "$project" "$@"; }
all_profiles() { for m in $MODES; do printf -- '--profile %s ' "$m"; done; }

root_fs() {
  # root_fs ROOT BINARY...: a runtime root file system in ROOT: the dynamic
  # loader and every library the binaries load, a passwd/group with
  # `nobody`, /tmp, and nsswitch.conf so service names resolve through
  # Docker's DNS. Prints the number of libraries.
  local root=$1; shift
  mkdir -p "$root/etc" "$root/tmp" "$root/usr/local/bin"
  chmod 1777 "$root/tmp"
  local libs
  libs=$(for b in "$@"; do ldd "$b"; done | grep -o '/[^ ]*' | sort -u)
  for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  # The loader path the binaries ask for, e.g. /lib64/ld-linux-x86-64.so.2.
  local interp
  interp=$(readelf -l "$1" | sed -n 's/.*interpreter: \(.*\)]/\1/p')
  if [ -n "$interp" ] && [ ! -e "$root$interp" ]; then
    mkdir -p "$root$(dirname "$interp")"
    cp -L "$interp" "$root$interp"
  fi
  printf 'root:x:0:0:root:/:/nonexistent\nnobody:x:65534:65534:nobody:/:/nonexistent\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  echo "$libs" | wc -w
}

build_base() {
  local root n; root=$(mktemp -d)
  n=$(root_fs "$root" $(for b in $BINS; do echo "$stage/$b"; done))
  tar -C "$root" -c . | docker import - "$base" >/dev/null
  rm -rf "$root"
  say "base image $base: $n shared libraries from this machine"
}

build_redis() {
  # The redis mode's store: this machine's redis-server alone on the same
  # kind of base (no shell, no redis-cli), run as nobody. Copied by content
  # under its own name: Debian's /usr/bin/redis-server is a symlink, and
  # Redis picks what it runs from argv[0].
  local server; server=$(command -v redis-server || true)
  [ -n "$server" ] || die "mode redis: redis-server is not installed here (apt-get install redis-server), or set SESSIONLAB_REDIS_IMAGE to an image you have (e.g. redis:7-alpine)"
  local old; old=$(docker image inspect -f '{{.Id}}' "$redis_image" 2>/dev/null || true)
  local root n; root=$(mktemp -d)
  n=$(root_fs "$root" "$server")
  cp -L "$server" "$root/usr/local/bin/redis-server"
  # redis-ha's Sentinels run from this file and rewrite it (what they learn
  # of the replica and of each other), so it and its folder are writable
  # by nobody; each container writes its own copy.
  mkdir -p "$root/etc/sessionlab"
  cat > "$root/etc/sessionlab/sentinel.conf" <<'CONF'
port 26379
protected-mode no
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel monitor sessionlab redis-1 6379 2
sentinel down-after-milliseconds sessionlab 1000
sentinel failover-timeout sessionlab 3000
sentinel parallel-syncs sessionlab 1
CONF
  chmod 0777 "$root/etc/sessionlab"; chmod 0666 "$root/etc/sessionlab/sentinel.conf"
  tar -C "$root" -c . | docker import --change 'USER 65534:65534' --change 'CMD ["redis-server"]' - "$redis_image" >/dev/null
  rm -rf "$root"
  # Verified by running it: the image's redis-server answers like the host's.
  local want got
  want=$("$server" --version)
  got=$(docker run --rm --network none "$redis_image" redis-server --version) \
    || die "$redis_image: redis-server does not start"
  [ "$got" = "$want" ] || die "$redis_image: redis-server says '$got', the host's '$want'"
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$redis_image")" ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
  say "redis image $redis_image: this machine's redis-server and $n shared libraries (${got%% sha=*})"
}

build() {
  docker info >/dev/null 2>&1 || die "no Docker engine reachable (docker info failed)"
  command -v docker-compose >/dev/null || die "docker-compose is not installed"
  say "building the binaries (cargo, $profile profile)"
  cargo build --quiet --profile "$profile" -p sessionlab-node -p sessionlab-lb -p sessionlab-dashboard -p sessionlab-lab --bins
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
  # Each secret once; one missing from an older file is added.
  (umask 077; touch "$env")
  local name bytes
  for name in SESSIONLAB_CLUSTER_SECRET:32 SESSIONLAB_ADMIN_TOKEN:16 SESSIONLAB_JWT_SECRET:32; do
    bytes=${name#*:}; name=${name%%:*}
    grep -q "^$name=" "$env" \
      || echo "$name=$(od -An -tx1 -N"$bytes" /dev/urandom | tr -d ' \n')" >>"$env"
  done
  set -a; . "$env"; set +a
}

up() {
  local mode=${1:-sticky-replicated}
  case " $MODES " in *" $mode "*) ;; *) die "unknown mode '$mode'; modes: $MODES" ;; esac
  build
  if { [ "$mode" = redis ] || [ "$mode" = redis-ha ]; } && [ -z "${SESSIONLAB_REDIS_IMAGE:-}" ]; then
    build_redis
    export SESSIONLAB_REDIS_IMAGE=$redis_image
  fi
  secrets
  export SESSIONLAB_IMAGE=$image
  local began=$SECONDS
  local scale=()
  [ "$mode" != backup ] || scale=(--scale node=3)
  compose --profile "$mode" up -d --no-build --remove-orphans "${scale[@]}"
  local lb=127.0.0.1:${SESSIONLAB_LB_PORT:-8080} admin=127.0.0.1:${SESSIONLAB_ADMIN_PORT:-8078}
  local dashboard=127.0.0.1:${SESSIONLAB_DASHBOARD_PORT:-8079}
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null -H "Authorization: Bearer $SESSIONLAB_ADMIN_TOKEN" "http://$admin/admin/v1/backends" \
        && [ "$(curl -fsS -H "Authorization: Bearer $SESSIONLAB_ADMIN_TOKEN" "http://$admin/admin/v1/backends" | grep -o '"state":"up"' | wc -l)" -ge 3 ]; do
    [ $SECONDS -lt $deadline ] || { compose --profile "$mode" logs --tail 20 >&2; die "not healthy after 60 s"; }
    sleep 0.5
  done
  until curl -fsS -o /dev/null "http://$dashboard/healthz"; do
    [ $SECONDS -lt $deadline ] || { compose --profile "$mode" logs --tail 20 dashboard >&2; die "the dashboard does not answer after 60 s"; }
    sleep 0.5
  done
  local login="log in as alice, bob or carol; password sessionlab"
  [ "$mode" != jwt ] || login="POST /auth/login username=alice&password=sessionlab for tokens"
  cat <<EOF
containers up and healthy in $((SECONDS - began)) s: mode $mode, 3 nodes (compose project $project)
  app     http://$lb/  ($login)
  dashboard http://$dashboard/dashboard?token=\$SESSIONLAB_ADMIN_TOKEN  (the token is in .sessionlab/docker.env)
  admin   http://$admin/  (the LB admin API; Authorization: Bearer \$SESSIONLAB_ADMIN_TOKEN)
  try     docker-compose -p $project ps
          docker-compose -p $project kill $mode-node-2          # a node dies
EOF
  [ "$mode" != backup ] || echo "          docker-compose -p $project --profile backup up -d --no-build --scale node=5   # grow to 5 nodes, nothing restarts"
  [ "$mode" != redis ] || echo "          docker-compose -p $project kill redis                 # the shared store dies"
  [ "$mode" != redis-ha ] || echo "          docker-compose -p $project kill redis-ha-redis-1      # the primary dies: the Sentinels promote redis-2"
  cat <<EOF
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
  local|sticky|replicated|sticky-replicated|redis|redis-ha|jwt|backup) up "$1" ;;
  *) die "usage: scripts/docker-up.sh [up] [MODE] | build | down  (modes: $MODES)" ;;
esac

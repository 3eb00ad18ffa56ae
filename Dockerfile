# sessionlab container image: sessionlab-node, sessionlab-lb,
# sessionlab-dashboard and sessionlab in one small runtime image. docker-compose.yml runs it in every mode.
#
#   docker build -t sessionlab:latest .          # compile here, standard images
#
# The base images are build arguments, so a mirror or pinned images can be
# used: --build-arg RUST_IMAGE=... --build-arg RUNTIME_IMAGE=...
#
# Stage `prebuilt` makes the same runtime image from binaries compiled on
# the host (scripts/docker-up.sh: for machines that cannot pull images; it
# passes a RUNTIME_IMAGE it made from the host's own shared libraries). It
# comes first so that building it alone never touches the Rust image.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUNTIME_IMAGE} AS prebuilt
COPY docker/prebuilt/ /usr/local/bin/
USER 65534:65534
EXPOSE 8080 8078 8079 8081 9081
CMD ["sessionlab-node", "--help"]

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sessionlab-node -p sessionlab-lb -p sessionlab-dashboard -p sessionlab-lab --bins \
 && mkdir /out \
 && cp target/release/sessionlab-node target/release/sessionlab-lb target/release/sessionlab-dashboard target/release/sessionlab /out/

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=build /out/ /usr/local/bin/
USER 65534:65534
EXPOSE 8080 8078 8079 8081 9081
CMD ["sessionlab-node", "--help"]

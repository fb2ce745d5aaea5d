# syntax=docker/dockerfile:1
#
# The gateway as a container image: built on Debian bookworm, run on distroless (glibc, CA
# certificates, no shell, no package manager) as the `nonroot` user (65532).
#
#   docker build -t ai-gateway .
#   docker run --rm -p 8080:8080 -v "$PWD/gateway.toml:/etc/gateway/gateway.toml:ro" \
#     -e GATEWAY_KEY_TEAM_A=... ai-gateway
#
# The Bedrock simulator (`gateway demo`) is left out. To include it:
#
#   docker build --build-arg CARGO_FEATURES=demo -t ai-gateway:demo .
#   docker run --rm -p 8080:8080 ai-gateway:demo demo --listen 0.0.0.0:8080
#
# `xtask/tests/deploy.rs` checks this file against the workspace (package, binary, features,
# Rust version, port), so a rename there fails the tests instead of the next image build.

# The workspace's `rust-version`: the toolchain the code is tested with.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
# Cargo features of the `gateway` package on top of none (`demo` adds the simulator).
ARG CARGO_FEATURES=""
WORKDIR /src
COPY . .
# The cache mounts keep the registry and compiled dependencies between builds; the binary is
# copied out because the target directory is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gateway --no-default-features \
        --features "${CARGO_FEATURES}" \
    && install -D target/release/gateway /out/gateway

# glibc and libgcc_s from bookworm, as in the build stage (the binary links nothing else), and
# the CA certificates the Bedrock and STS clients trust (compiled-in webpki roots without them).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gateway /usr/local/bin/gateway
# Already the image's user; said again so that a change of base image cannot make it root.
USER 65532:65532
# The configuration is mounted at /etc/gateway/gateway.toml (a ConfigMap in Kubernetes); it must
# listen on 0.0.0.0:8080 (the default, 127.0.0.1, is unreachable from outside the container).
# Secrets come in as environment variables through `${VAR}` in the file.
EXPOSE 8080
# No HEALTHCHECK: Docker runs it inside the container, and distroless has no shell or curl to
# run. Kubernetes probes /health (liveness) and /ready (readiness) from outside instead; with
# plain Docker, probe http://<container>:8080/health from the host or the orchestrator.
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["serve", "--config", "/etc/gateway/gateway.toml", "--log-format", "json"]

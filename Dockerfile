# syntax=docker/dockerfile:1
#
# promhpa container image: a distroless, non-root image whose entrypoint is the promhpa
# binary, so a prometheus-adapter Deployment's args work unchanged:
#
#   docker build -t promhpa .
#   docker run --rm promhpa --prometheus-url=http://prometheus:9090 --config=/etc/adapter/config.yaml
#
# Build stage: the workspace's release profile (fat LTO, one codegen unit, stripped), with
# glibc's allocator (the README compares it with jemalloc). The image has gcc and make, so
# adding `--features jemalloc` to the build below (jemalloc built from its C sources) works.
FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
# The registry and target directories are cache mounts: a rebuild after a source edit
# reuses the downloaded and compiled dependencies.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# `serve --demo` compiles in the demo rule file and object set.
COPY demo ./demo
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package promhpa --bin promhpa \
 && install -D -m 0755 target/release/promhpa /out/promhpa

# Runtime stage: glibc, CA certificates and tzdata only; no shell, no package manager.
# The `nonroot` variant runs as uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/promhpa /promhpa
USER 65532:65532
# --secure-port default of prometheus-adapter's Deployment manifests.
EXPOSE 6443
ENTRYPOINT ["/promhpa"]

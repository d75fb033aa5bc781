# syntax=docker/dockerfile:1
# podtrace controller image.
#   docker build -t ghcr.io/podtrace/podtrace:0.1.0 .
# rustls (ring) means no OpenSSL, so distroless/cc (glibc +
# libgcc) is all the runtime needs.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /build

# Dependency layer: compile every dependency against stub sources, so editing podtrace's
# own code does not recompile the ~300 crates below it. Bench/example/test targets are
# stripped from this copy of the manifest because their files are not here yet and cargo
# refuses a manifest naming missing targets; targets do not affect Cargo.lock.
COPY Cargo.toml Cargo.lock ./
RUN awk '/^\[\[(bench|example|test)\]\]/{skip=1; next} /^\[/{skip=0} !skip' Cargo.toml > Cargo.deps.toml \
 && mv Cargo.deps.toml Cargo.toml \
 && mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && : > src/lib.rs \
 && cargo build --release --locked --bin podtrace \
 && rm -rf src

# Everything .dockerignore lets through: the real manifest, sources and any targets it
# names (benches, examples, tests).
COPY . .
# COPY keeps the build context's mtimes, which can be older than the stub build above;
# touching makes cargo see the real sources as newer and rebuild the crate.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin podtrace \
 && cp target/release/podtrace /podtrace

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /podtrace /podtrace
# Numeric, so Kubernetes can check runAsNonRoot without an /etc/passwd lookup.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/podtrace"]
CMD ["run"]

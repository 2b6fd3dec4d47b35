# syntax=docker/dockerfile:1
# Tether node image: `tether` on distroless/cc, run as uid 65532.
#   docker build --build-arg TETHER_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t registry.example.com/tether:0.1.0 .
# Runtime base: gcr.io/distroless/cc-debian12 has glibc and libgcc_s (the binary links them;
# aws-lc is built in), the CA bundle (JWKS fetches over HTTPS), /etc/passwd with the
# `nonroot` user, and no shell or package manager. The chart needs no shell: each pod
# reads its own config file and the preStop hook is the kubelet's `sleep` action.

FROM rust:1.88-bookworm AS build
WORKDIR /src
# Every workspace member must be present for cargo to load the workspace (.ci/run checks
# that each member of Cargo.toml is copied here).
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY protocol protocol
COPY node node
COPY cluster cluster
COPY client client
COPY tests tests
COPY chaos chaos
COPY bench bench
# The context has no .git: tether_build_info's commit comes as a build argument (above).
ARG TETHER_GIT_COMMIT=unknown
ENV TETHER_GIT_COMMIT=${TETHER_GIT_COMMIT}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p tether-node --bin tether \
    && install -D -m 0755 target/release/tether /out/tether

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/tether /usr/local/bin/tether
USER 65532:65532
# client (WebSocket), admin (HTTP API, /livez, /readyz, /metrics), peer (Raft, mTLS)
EXPOSE 7070 7071 7072
ENTRYPOINT ["/usr/local/bin/tether"]
CMD ["serve", "--config", "/etc/tether/tether.toml"]

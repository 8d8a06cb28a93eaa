# syntax=docker/dockerfile:1.7
# restrictd: multi-stage build. Dependencies and incremental artifacts are kept
# in BuildKit cache mounts, so a rebuild after a source change recompiles only
# the workspace crates.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p restrictd \
 && cp target/release/restrictd /usr/local/bin/restrictd

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home restrictd
COPY --from=build /usr/local/bin/restrictd /usr/local/bin/restrictd
COPY config.toml /etc/restrictd/config.toml
USER restrictd
ENV RESTRICTD_HTTP__ADDR=0.0.0.0:8080
EXPOSE 8080
# Healthy once ready: Redis reachable and every owned shard recovered.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/ready || exit 1
ENTRYPOINT ["restrictd", "--config", "/etc/restrictd/config.toml"]

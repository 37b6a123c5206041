# postflight in a container: multi-stage build, small non-root runtime.
#   docker build -t postflight .
#   docker run -d -p 7980:7980 -v postflight-data:/var/lib/postflight \
#     -v $PWD/postflight.toml:/etc/postflight/postflight.toml:ro postflight
# The image ships config/docker.toml (listen 0.0.0.0:7980, store in the volume); mount your own over it.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
    && strip target/release/postflight

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/postflight --shell /usr/sbin/nologin postflight \
    && mkdir -p /etc/postflight /var/lib/postflight \
    && chown postflight:postflight /var/lib/postflight
COPY --from=builder /src/target/release/postflight /usr/local/bin/postflight
COPY config/docker.toml /etc/postflight/postflight.toml
ENV POSTFLIGHT_CONFIG=/etc/postflight/postflight.toml
USER postflight
VOLUME ["/var/lib/postflight"]
EXPOSE 7980
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:7980/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/postflight"]
CMD ["run"]

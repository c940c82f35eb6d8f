# faultline in a container (docker-compose.yml's `faultline` service runs `faultline serve`).
# Build stage: the release build exactly as .ci/run makes it; runtime stage: the binary
# alone on a small Debian (same libc as the build, CA certificates for HTTPS stores,
# Pushgateways and OTLP endpoints).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin faultline

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/faultline faultline
COPY --from=build /src/target/release/faultline /usr/local/bin/faultline
USER faultline
WORKDIR /var/lib/faultline
ENV FAULTLINE_STORE=/var/lib/faultline/store.db
EXPOSE 8089
ENTRYPOINT ["faultline"]
CMD ["serve", "--listen", "0.0.0.0:8089"]

# examples/demo-service in a container for docker-compose.yml (an example, so it builds
# with the dev-dependencies; only its binary reaches the runtime image).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --example demo-service

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/examples/demo-service /usr/local/bin/demo-service
EXPOSE 8090
ENTRYPOINT ["demo-service", "--host", "0.0.0.0", "--port", "8090"]

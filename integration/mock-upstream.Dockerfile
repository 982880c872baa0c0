# The demo's mock model provider (OpenAI and Anthropic, JSON and SSE), built from this repository.
# Used by integration/docker-compose.yaml; build context: the repository root.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p ai-gateway-integration --bin mock-upstream

FROM debian:bookworm-slim
COPY --from=build /src/target/release/mock-upstream /usr/local/bin/mock-upstream
ENTRYPOINT ["mock-upstream"]
CMD ["127.0.0.1:18080", "mock"]

# Multi-stage build of the one `conveyor` binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin conveyor

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 conveyor
COPY --from=build /src/target/release/conveyor /usr/local/bin/conveyor
USER conveyor
WORKDIR /home/conveyor
EXPOSE 5000
ENTRYPOINT ["conveyor"]
CMD ["all"]

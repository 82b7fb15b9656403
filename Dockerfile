# Builds the gateway and the mock upstream into one small runtime image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p switchyard -p switchyard-mock-upstream

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/switchyard --create-home switchyard
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
COPY --from=build /src/target/release/mock-upstream /usr/local/bin/mock-upstream
USER switchyard
WORKDIR /var/lib/switchyard
ENV SWITCHYARD__DATA_DIR=/var/lib/switchyard/data \
    SWITCHYARD__SERVER__LISTEN=0.0.0.0:8787
EXPOSE 8787
ENTRYPOINT ["switchyard"]
CMD ["serve"]

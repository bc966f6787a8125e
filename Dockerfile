# One image with the binaries: api, worker, migration, and the TestIO simulator for the demo profile.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p api -p worker -p migration --bins \
 && cargo build --release --locked -p tests --bin testio-sim --bin stripe-sim

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/api /src/target/release/worker /src/target/release/migration \
     /src/target/release/testio-sim /src/target/release/stripe-sim /usr/local/bin/
# The mail outbox of MAIL_TRANSPORT=file (docker-compose mounts a volume here).
RUN mkdir /outbox && chown 10001 /outbox
USER 10001
ENV APP_HOST=0.0.0.0 APP_PORT=8080
EXPOSE 8080
CMD ["api"]

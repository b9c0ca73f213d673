# Build: docker build -t hookgate .   Run: docker run -p 8080:8080 -v $PWD/hookgate.yaml:/etc/hookgate/hookgate.yaml hookgate
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
RUN cargo build --release --locked --bin hookgate

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 hookgate
WORKDIR /etc/hookgate
COPY --from=build /src/target/release/hookgate /usr/local/bin/hookgate
COPY providers providers
COPY schemas schemas
COPY hookgate.yaml hookgate.yaml
# The spool and handshake state live beside the config (spool.dir and state_dir are relative).
RUN mkdir -p spool state && chown hookgate spool state
VOLUME ["/etc/hookgate/spool", "/etc/hookgate/state"]
USER hookgate
EXPOSE 8080 9091
ENTRYPOINT ["hookgate"]
CMD ["serve", "--config", "/etc/hookgate/hookgate.yaml"]

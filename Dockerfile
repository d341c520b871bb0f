# syntax=docker/dockerfile:1.7
# SelfDB's production image: `docker compose up -d` builds it (see
# docker-compose.yml). Three stages: the components and the host (dist
# profile: fat LTO, as `make bench` measures it), the JavaScript function
# toolchain's npm packages, and a slim runtime that runs `selfdb` as a
# non-root user; before them the admin dashboard's static files, which the
# host embeds when it is compiled.

FROM node:20-bookworm-slim AS dashboard
WORKDIR /src/dashboard
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY dashboard/ ./
RUN npm run build

FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
COPY --from=dashboard /src/dashboard/dist /src/dashboard/dist
# Cargo's caches outlive a build, so rebuilding after a source change
# recompiles SelfDB, not wasmtime.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/components/target \
    --mount=type=cache,target=/src/target \
    make components \
 && cargo build --locked --profile dist -p selfdb \
 && install -D -m 0755 target/dist/selfdb /out/selfdb

FROM node:20-bookworm-slim AS js
WORKDIR /opt/selfdb/toolchain/js
COPY toolchain/js/package.json toolchain/js/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY toolchain/js/ ./

FROM debian:bookworm-slim
# ca-certificates: TLS to PostgreSQL, SMTP, S3 and webhooks; curl: the
# health check; libstdc++6: node, which builds TypeScript/JavaScript
# functions at deploy time.
# The libraries pg_dump 17 (below) links besides libpq.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libstdc++6 \
      libssl3 zlib1g liblz4-1 libzstd1 libldap-2.5-0 libgssapi-krb5-2 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin selfdb \
 && mkdir -p /data && chown selfdb:selfdb /data
COPY --from=js /usr/local/bin/node /usr/local/bin/node
COPY --from=js /opt/selfdb/toolchain/js /opt/selfdb/toolchain/js
COPY --from=build /out/selfdb /usr/local/bin/selfdb
# `selfdb backup` runs pg_dump, which must be of the server's major version
# (compose runs PostgreSQL 17; Debian 12's own client is 15): PostgreSQL
# 17's programs and libpq from the official image of the same major.
COPY --from=postgres:17-bookworm /usr/lib/postgresql/17 /usr/lib/postgresql/17
COPY --from=postgres:17-bookworm /usr/lib/*-linux-gnu/libpq.so.5* /usr/local/lib/
RUN ldconfig
ENV SELFDB_DATA_DIR=/data \
    SELFDB_LISTEN=0.0.0.0:8000 \
    SELFDB_S3_PORT=9000 \
    SELFDB_JS_TOOLCHAIN=/opt/selfdb/toolchain/js
USER selfdb
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000 9000
# HTTP, or HTTPS when a certificate is configured (any certificate: this
# asks whether the host answers, not who it is).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/health >/dev/null \
   || curl -fsSk https://127.0.0.1:8000/health >/dev/null || exit 1
ENTRYPOINT ["selfdb"]
CMD ["serve"]

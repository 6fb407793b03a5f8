# PostgreSQL 15 from Debian's packages, scram-sha-256 only. Real users may run the official postgres:15
# image (POSTGRES_PASSWORD_FILE) instead; Beacon needs nothing of it but a superuser for `init`.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 beacon \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin beacon \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R 10001:10001 /var/lib/postgresql /var/run/postgresql && chmod 700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/beacon-postgres
USER 10001:10001
ENV PGPORT=5432 PGDATA=/var/lib/postgresql/data POSTGRES_PASSWORD_FILE=/run/secrets/postgres/superuser
VOLUME /var/lib/postgresql/data
# PostgreSQL's "fast" shutdown: sessions ended, everything committed kept.
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s CMD ["/usr/lib/postgresql/15/bin/pg_isready", "-h", "127.0.0.1"]
ENTRYPOINT ["/bin/sh", "/usr/local/bin/beacon-postgres"]

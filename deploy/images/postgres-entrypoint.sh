#!/bin/sh
# A cluster made once in the data volume (superuser POSTGRES_USER, default postgres; its password from its
# file), then the server in the foreground. Every connection: scram-sha-256 only.
set -eu
umask 077
bin=/usr/lib/postgresql/15/bin
[ -s "$POSTGRES_PASSWORD_FILE" ] || { echo "missing password file $POSTGRES_PASSWORD_FILE" >&2; exit 2; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  "$bin/initdb" -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --auth=scram-sha-256 --pwfile="$POSTGRES_PASSWORD_FILE" -E UTF8 --locale=C.UTF-8 >/dev/null
  cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
password_encryption = scram-sha-256
unix_socket_directories = '/var/run/postgresql'
CONF
  printf 'local all all scram-sha-256\nhost all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' > "$PGDATA/pg_hba.conf"
fi
exec "$bin/postgres" -D "$PGDATA" -p "$PGPORT"

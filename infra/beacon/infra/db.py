"""PostgreSQL: connections and migrations (`beacon migrate`)."""

from __future__ import annotations

import hashlib
from importlib import resources
from importlib.resources.abc import Traversable

import psycopg
from psycopg import sql

from beacon.infra import logs

log = logs.get("beacon.infra.db")

# The SQL ships as package data of beacon.migrations (migrations/beacon/migrations/*.sql), so an installed wheel
# migrates exactly as a checkout does.
MIGRATIONS_PACKAGE = "beacon.migrations"
# Any fixed number: every `beacon migrate` takes this lock, so two at once run one after the other.
_MIGRATION_LOCK = 0x62656163


class MigrationError(RuntimeError):
    pass


# Least privilege, table by table: what each service's role may do (roles are beacon_<service>; the migrator
# owns the schema and every table, so it needs no grant). Applied after every migration run, for the roles and
# tables that exist, replacing whatever those roles had on the schema's tables before.
PRIVILEGES: dict[str, dict[str, str]] = {
    "beacon_recorder": {
        "jobs": "SELECT, INSERT",
        "executions": "SELECT, INSERT, UPDATE",  # UPDATE: only a timeout, to its late result (ROW_POLICIES)
        "classifications": "SELECT, INSERT",
        "job_regions": "SELECT, INSERT",
        "pending_results": "SELECT, INSERT, UPDATE, DELETE",
        "schema_migrations": "SELECT",
    },
    "beacon_submitter": {
        "submissions": "SELECT, INSERT",
        "api_tokens": "SELECT",
        "api_token_usage": "SELECT, INSERT, UPDATE",
        "schema_migrations": "SELECT",
    },
    "beacon_reader": {
        "jobs": "SELECT",
        "executions": "SELECT",
        "classifications": "SELECT",
        "job_regions": "SELECT",
        "api_tokens": "SELECT",
        "schema_migrations": "SELECT",
    },
}


# Row by row, beyond the table grants: an execution's row may be updated only to put the cell's late real
# result in the place of its timeout (the recorder's store: a late result supersedes a timeout), never any
# other row and never into another timeout. Row-level security binds every role but the tables' owner.
ROW_POLICIES: dict[str, list[str]] = {
    "executions": [
        "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS rows_are_read ON {table}",
        "CREATE POLICY rows_are_read ON {table} FOR SELECT USING (true)",
        "DROP POLICY IF EXISTS rows_are_added ON {table}",
        "CREATE POLICY rows_are_added ON {table} FOR INSERT WITH CHECK (true)",
        "DROP POLICY IF EXISTS late_result_replaces_timeout ON {table}",
        "CREATE POLICY late_result_replaces_timeout ON {table} FOR UPDATE"
        " USING (status = 'timeout') WITH CHECK (status <> 'timeout')",
    ]
}


def row_policies(table: str, name: str | None = None) -> list[sql.Composed]:
    """ROW_POLICIES of `table`, applied to the table `name` (default: itself), as statements its owner runs."""
    return [sql.SQL(statement).format(table=sql.Identifier(name or table)) for statement in ROW_POLICIES.get(table, [])]


def grants(table: str, roles: set[str]) -> list[sql.Composed]:
    """The GRANT statements PRIVILEGES gives `table`, for those of `roles` that exist: for migrate, and for
    replay's freshly built tables (a table made anew has only its owner's privileges)."""
    return [
        sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(rights[table]), sql.Identifier(table), sql.Identifier(role))
        for role, rights in sorted(PRIVILEGES.items())
        if table in rights and role in roles
    ]


EXISTING_ROLES = "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)"


def apply_privileges(conn: psycopg.Connection) -> None:
    """GRANT what PRIVILEGES says (and nothing else) on the current database, inside the caller's transaction."""
    roles = {r for (r,) in conn.execute(EXISTING_ROLES, (list(PRIVILEGES),))}
    tables = {t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    for role in sorted(roles):
        conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    for table in sorted(tables):
        for statement in [*grants(table, roles), *row_policies(table)]:
            conn.execute(statement)


def require_current(url: str, directory: Traversable | None = None) -> None:
    """What a service checks at start instead of migrating (its role may not): every migration applied."""
    wanted = [p.name for p in migration_files(directory)]
    with connect(url) as conn:
        try:
            applied = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
        except psycopg.errors.UndefinedTable:
            applied = set()
    missing = [name for name in wanted if name not in applied]
    if missing:
        raise MigrationError(
            f"the database at {redact(url)} lacks migrations {', '.join(missing)}; run `beacon migrate` "
            "(`make up` does) as the schema's owner"
        )


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        raise psycopg.OperationalError(
            f"cannot connect to PostgreSQL at {redact(url)}: {str(exc).strip()}\n"
            "Start the local one with `make up`, or set DATABASE_URL to a server you run."
        ) from exc


async def connect_async(url: str, **kwargs: object) -> psycopg.AsyncConnection:
    try:
        return await psycopg.AsyncConnection.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        raise psycopg.OperationalError(
            f"cannot connect to PostgreSQL at {redact(url)}: {str(exc).strip()}\n"
            "Start the local one with `make up`, or set DATABASE_URL to a server you run."
        ) from exc


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


def migration_files(directory: Traversable | None = None) -> list[Traversable]:
    """The migrations in file-name order; refuses an empty set, which would leave the tables missing."""
    folder = directory if directory is not None else resources.files(MIGRATIONS_PACKAGE)
    found = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    if not found:
        raise MigrationError(f"no migrations found in {folder}: is the beacon-migrations package installed?")
    return found


def migrate(url: str, directory: Traversable | None = None) -> list[str]:
    """Apply the migrations not applied yet, in file-name order; returns the ones it applied.

    Idempotent, and safe when several processes run it at once (an advisory lock serialises them).
    A migration that was applied and then edited is refused rather than silently ignored.
    """
    applied_now: list[str] = []
    with connect(url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = dict(conn.execute("SELECT version, sha256 FROM schema_migrations").fetchall())
        for path in migration_files(directory):
            sql = path.read_text(encoding="utf-8")
            digest = hashlib.sha256(sql.encode()).hexdigest()
            if path.name in done:
                if done[path.name] != digest:
                    raise MigrationError(
                        f"{path.name} was applied already but its file has changed since; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            try:
                conn.execute(sql)
            except psycopg.errors.RaiseException as exc:  # a migration's own refusal: its message and hint
                hint = f" {exc.diag.message_hint}" if exc.diag.message_hint else ""
                raise MigrationError(f"{path.name} refused: {exc.diag.message_primary}.{hint}") from None
            conn.execute("INSERT INTO schema_migrations (version, sha256) VALUES (%s, %s)", (path.name, digest))
            applied_now.append(path.name)
            log.info("migration_applied", version=path.name)
        apply_privileges(conn)
    return applied_now

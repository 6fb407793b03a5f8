"""A PostgreSQL 15+ cluster under `.beacon/pg`, made with initdb and run with pg_ctl on a private port.

As root it runs as the `postgres` user, who may not be allowed into the clone (a clone in /root, or in
`mktemp -d`, is mode 700): so as root the cluster (data, sockets, log) lives in a folder of its own that
postgres owns, /var/lib/beacon/<hash of the state folder's path>, and `.beacon/pg` is a symlink to it.
The permissions of the user's own folders are never touched.

Authenticated from the start: initdb sets scram-sha-256 for every connection (no trust line) and the
superuser `beacon` gets a generated password; `ensure_roles` makes the services' roles (none of them a
superuser): beacon_migrator owns the database and its schema, beacon_recorder, beacon_submitter and
beacon_reader get table privileges from beacon.infra.db.PRIVILEGES when `beacon migrate` runs.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from beacon.deploy.local import credentials
from beacon.deploy.local.proc import StartError, require_free, tail
from beacon.infra.settings import DB_ROLE_PREFIX, with_credentials

USER = "beacon"
DATABASE = "beacon"
# As root: where clusters live, one folder per state folder, each owned by postgres (mode 700).
ROOT_CLUSTERS = Path("/var/lib/beacon")

if TYPE_CHECKING:
    import psycopg
# The services' roles (beacon_<name>), each with its own password file under .beacon/secrets/postgres/.
ROLES = ("migrator", "recorder", "submitter", "reader")


def port() -> int:
    return int(os.environ.get("BEACON_PG_PORT", "15432"))


def url(database: str = DATABASE) -> str:
    """The database's address without credentials: each service fills in its own role (Settings.acting_as)."""
    return f"postgresql://127.0.0.1:{port()}/{database}"


def superuser_password(state: Path) -> str:
    return credentials.password(state.absolute(), "postgres", "admin")


def admin_url(state: Path, database: str = DATABASE) -> str:
    """The superuser's URL: for `make up` and the tests' fixtures (creating databases and roles), no service."""
    return with_credentials(url(database), USER, superuser_password(state))


def role_url(state: Path, role: str, database: str = DATABASE) -> str:
    return with_credentials(url(database), DB_ROLE_PREFIX + role, credentials.password(state, "postgres", role))


def find_bindir() -> Path:
    """The newest PostgreSQL ≥ 15 server binaries on this machine."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for bindir in candidates:
        out = subprocess.run([f"{bindir}/pg_ctl", "--version"], capture_output=True, text=True).stdout
        match = re.search(r"(\d+)", out)
        if match and int(match.group(1)) >= 15 and Path(bindir, "initdb").exists():
            return Path(bindir)
    raise StartError(
        "no PostgreSQL 15 or newer server found (looked for initdb/pg_ctl in /usr/lib/postgresql/*/bin and on "
        "PATH). Install it with `apt-get install postgresql-15`, or set DATABASE_URL to a server you run."
    )


class PostgresCluster:
    def __init__(self, state: Path) -> None:
        state = state.absolute()
        self.state = state
        self.link = state / "pg"
        self.home = self._home(self.link)
        self.data = self.home / "data"
        self.sockets = self.home / "sockets"
        self.log_link = state / "logs" / "postgres.log"
        self.log = self.home / "postgres.log" if self.outside else self.log_link

    @staticmethod
    def _home(link: Path) -> Path:
        if link.is_symlink():
            return Path(os.readlink(link))  # made by an earlier `make up` as root
        if os.geteuid() != 0 or (link / "data" / "PG_VERSION").exists():
            return link  # an ordinary user's cluster, or one made as root inside the clone before
        return ROOT_CLUSTERS / hashlib.sha256(str(link).encode()).hexdigest()[:12]

    @property
    def outside(self) -> bool:
        """Whether the cluster lives outside the state folder (as root), reached through `.beacon/pg`."""
        return self.home != self.link

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        # PostgreSQL refuses to run as root; as root we run it as the `postgres` system user, from a
        # working directory that user can enter (not the clone's).
        cwd = None
        if os.geteuid() == 0:
            argv = ["runuser", "-u", self._os_user(), "--", *argv]
            cwd = "/"
        result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
        if check and result.returncode != 0:
            raise StartError(f"`{' '.join(argv)}` failed:\n{(result.stdout + result.stderr)[-2000:]}")
        return result

    @staticmethod
    def _os_user() -> str:
        try:
            return pwd.getpwnam("postgres").pw_name
        except KeyError:
            raise StartError(
                "running as root, and PostgreSQL will not run as root; there is no `postgres` user to run it as. "
                "Create one (`useradd --system postgres`) or run `make up` as an ordinary user."
            ) from None

    def _prepare_dirs(self) -> None:
        if self.outside:
            ROOT_CLUSTERS.mkdir(mode=0o755, parents=True, exist_ok=True)
            ROOT_CLUSTERS.chmod(0o755)  # the postgres user must pass through it, whatever our umask
            self.home.mkdir(mode=0o700, exist_ok=True)
            # What a failed attempt before this layout left in the clone: empty folders and an empty log.
            for path in (self.link, self.log_link):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.is_file() and not path.is_symlink():
                    path.unlink()
            for path, target in ((self.link, self.home), (self.log_link, self.log)):
                if not path.is_symlink():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.symlink_to(target)
        for d in (self.home, self.sockets, self.log.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        if os.geteuid() == 0:
            owner = pwd.getpwnam(self._os_user())
            for path in (self.home, self.sockets, self.log):
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def _set_orphan_aside(self) -> None:
        """A cluster at this state folder's place that the state folder does not know (no `.beacon/pg` link:
        an earlier clone at the same path was deleted without `make clean`) is locked by passwords that were
        deleted with it. It is moved aside, never deleted, and a new one is made; the one moved aside at an
        earlier time is deleted, so at most one is kept per path."""
        if not self.outside or self.link.is_symlink() or not self.home.exists():
            return
        if self.running():
            self._run([str(find_bindir() / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"])
        aside = self.home.with_name(self.home.name + ".orphaned")
        if aside.exists():
            shutil.rmtree(aside)
        self.home.rename(aside)
        print(
            f"PostgreSQL: a cluster left by an earlier checkout at this path (its passwords were deleted with it) "
            f"was moved to {aside}; a new one is made. Delete the old one with `rm -rf {aside}` once you do not "
            "need its data."
        )

    def running(self) -> bool:
        if not (self.data / "postmaster.pid").exists():
            return False
        return self._run([str(find_bindir() / "pg_ctl"), "status", "-D", str(self.data)], check=False).returncode == 0

    def start(self) -> None:
        self._set_orphan_aside()
        if self.running():
            return
        bindir = find_bindir()
        self._prepare_dirs()
        if not (self.data / "PG_VERSION").exists():
            # The superuser's password reaches initdb in a file of the user that runs it, deleted at once.
            pwfile = self.home / "initdb-password"
            pwfile.write_text(superuser_password(self.state))
            if os.geteuid() == 0:
                owner = pwd.getpwnam(self._os_user())
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            try:
                self._run(
                    [
                        str(bindir / "initdb"),
                        "-D",
                        str(self.data),
                        "-U",
                        USER,
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ]
                )
            finally:
                pwfile.unlink(missing_ok=True)
        self.refuse_trust()
        require_free(port(), "PostgreSQL", "BEACON_PG_PORT")
        options = (
            f"-p {port()} -c listen_addresses=127.0.0.1 -k {self.sockets} "
            "-c max_connections=200 -c shared_buffers=256MB -c fsync=on"
        )
        result = self._run(
            [
                str(bindir / "pg_ctl"),
                "start",
                "-D",
                str(self.data),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.log),
                "-o",
                options,
            ],
            check=False,
        )
        if result.returncode != 0:
            raise StartError(f"PostgreSQL did not start. Last lines of {self.log}:\n{tail(self.log)}")
        self.ensure_database()

    def refuse_trust(self) -> None:
        """A cluster an earlier Beacon made with `--auth=trust` lets any local user in as superuser: refused."""
        hba = self.data / "pg_hba.conf"
        try:
            lines = [line.split() for line in hba.read_text().splitlines() if line.strip() and line[0] != "#"]
        except PermissionError:  # as root the file is postgres's; initdb above wrote it without trust
            return
        if any("trust" in fields for fields in lines):
            raise StartError(
                f"the PostgreSQL cluster in {self.home} trusts every local connection (made before Beacon's "
                "database required passwords); `make down && make clean && make up` makes it afresh (its data "
                "is deleted)"
            )

    def ensure_database(self, name: str = DATABASE) -> None:
        import psycopg

        with psycopg.connect(admin_url(self.state, "postgres"), autocommit=True) as conn:
            ensure_roles(conn, self.state)
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                create_database(conn, name)

    def stop(self) -> bool:
        if not self.running():
            return False
        self._run([str(find_bindir() / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"])
        return True

    def remove_outside(self) -> Path | None:
        """`make clean`: delete a stopped cluster kept outside the state folder (the state folder itself
        is the caller's to delete). Returns the folder deleted, if any."""
        if not self.outside or self.home.parent != ROOT_CLUSTERS or not self.home.is_dir() or self.running():
            return None
        shutil.rmtree(self.home)
        return self.home


def ensure_roles(conn: psycopg.Connection, state: Path | None, passwords: dict[str, str] | None = None) -> None:
    """Each service's role, with its password from its file in `state` (a rotated file is applied here), or
    from `passwords` (role → password). None may create databases or roles, or bypass row security; none is
    a superuser."""
    from psycopg import sql

    for role in ROLES:
        name = sql.Identifier(DB_ROLE_PREFIX + role)
        password = passwords[role] if passwords is not None else credentials.password(state or Path(), "postgres", role)
        secret = sql.Literal(password)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DB_ROLE_PREFIX + role,)).fetchone()
        verb = sql.SQL("ALTER ROLE") if exists else sql.SQL("CREATE ROLE")
        conn.execute(
            sql.SQL("{} {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}").format(
                verb, name, secret
            )
        )


def create_database(conn: psycopg.Connection, name: str) -> None:
    """A database the migrator owns (so it owns the schema `public` and every table it creates), that only
    the services' roles may connect to."""
    from psycopg import sql

    db = sql.Identifier(name)
    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, sql.Identifier(DB_ROLE_PREFIX + "migrator")))
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
    roles = sql.SQL(", ").join(sql.Identifier(DB_ROLE_PREFIX + r) for r in ROLES)
    conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, roles))

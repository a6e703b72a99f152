"""A real PostgreSQL server for tests: `initdb` in a temporary directory, `pg_ctl` on a socket.

Nothing listens on TCP (`listen_addresses=''`): clients reach the server through a Unix socket
in the server's own temporary directory. `initdb` refuses to run as root, so as root the server
runs as the `postgres` account the Debian package creates (or `nobody`), owning its directory.
`PostgresUnavailable` says why a server cannot be had here (tests skip with that reason).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

PORT = 5432  # only names the socket file: the socket directory is private to this server
TIMEOUT = 60  # seconds for initdb, start and stop on a busy machine
INSTALL_HINT = "Debian package postgresql; tests/install-system-deps.sh installs it"


class PostgresUnavailable(Exception):
    """No PostgreSQL server can be started here; the message says why."""


def server_bindir() -> Path | None:
    """The newest installed server's bin directory (Debian keeps it off PATH), else pg_config's."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if (bindir / "pg_ctl").exists() and (bindir / "initdb").exists():
            return bindir
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _server_account() -> pwd.struct_passwd | None:
    """Who runs the server: nobody special unless we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and no 'postgres' or 'nobody' account to run as")


class PostgresServer:
    """One throwaway cluster; `start()`/`stop()` may be repeated (outage tests), `close()` ends
    it and removes its files."""

    def __init__(self) -> None:
        bindir = server_bindir()
        if bindir is None:
            raise PostgresUnavailable(f"PostgreSQL server binaries not found ({INSTALL_HINT})")
        self.bindir = bindir
        self.account = _server_account()
        self.dir = Path(tempfile.mkdtemp(prefix="sr-pg-"))
        self.data = self.dir / "data"
        self.logfile = self.dir / "server.log"
        self.running = False
        self._names = itertools.count()
        if self.account is not None:
            os.chown(self.dir, self.account.pw_uid, self.account.pw_gid)
        try:
            self._run(
                "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                "--locale=C.UTF-8", "--no-sync",
            )  # fmt: skip
        except BaseException:
            self.close()
            raise

    def _run(self, tool: str, *args: str) -> str:
        cmd = [str(self.bindir / tool), *args]
        if self.account is not None:
            cmd = ["runuser", "-u", self.account.pw_name, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        if done.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-3000:] if self.logfile.exists() else ""
            raise PostgresUnavailable(
                f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n{log}"
            )
        return done.stdout

    @property
    def socket_dir(self) -> Path:
        return self.dir

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={PORT} user=postgres dbname={dbname}"

    def start(self) -> None:
        options = (
            f"-k {self.socket_dir} -p {PORT} -c listen_addresses='' -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w",
            "-t", str(TIMEOUT), "start",
        )  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Fast shutdown: clients are disconnected, as when an operator restarts the server."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", str(TIMEOUT), "stop")
        self.running = False

    def create_database(self, *options: str) -> str:
        """A new empty database (`options` go to CREATE DATABASE); its DSN."""
        import psycopg

        name = f"t{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} {' '.join(options)}".encode())
        return self.dsn(name)

    def close(self) -> None:
        try:
            if self.running:
                self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def start_server() -> PostgresServer:
    """A running server, or `PostgresUnavailable` with the reason."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("psycopg not installed (pip install -e '.[test]')") from None
    server = PostgresServer()
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server

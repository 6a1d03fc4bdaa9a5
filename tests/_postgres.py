"""A throwaway PostgreSQL server for tests and benchmarks: `start_postgres(base_dir)`.

Runs Debian's ``initdb`` and ``pg_ctl`` (``/usr/lib/postgresql/*/bin``, or those on PATH) on a free
loopback port, with trust authentication, fsync off and its unix socket in its own folder; as
the ``postgres`` OS user when running as root (PostgreSQL refuses to run as root). Raises
`PostgresUnavailable` (a RuntimeError; tests turn it into a skip) when no server binaries are
found or the server does not start.

    with start_postgres(tmp_path) as server:
        store = open_store(server.url)
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PgServer", "PostgresUnavailable", "find_pg_bin", "start_postgres"]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (no binaries, or initdb/pg_ctl failed)."""


def find_pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: the newest Debian install, else PATH; None when absent."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if Path(folder, "initdb").is_file() and Path(folder, "pg_ctl").is_file():
            return Path(folder)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """A running throwaway server: ``url`` names its ``postgres`` database as the superuser."""

    def __init__(self, bin_dir: Path, data: Path, port: int, as_user: list[str], scratch: Path | None) -> None:
        self.bin_dir, self.data, self.port = bin_dir, data, port
        self._as_user, self._scratch = as_user, scratch
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def database_url(self, name: str) -> str:
        """The URL of database ``name`` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (a fresh one per test is fast) and return its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def stop(self) -> None:
        """Stop the server at once and remove its files."""
        if self.data.exists():
            subprocess.run([*self._as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "stop",
                            "-m", "immediate"], capture_output=True, check=False, timeout=60)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_postgres(base_dir: Path) -> PgServer:
    """Start a throwaway PostgreSQL server with its files under ``base_dir`` (or, as root, when the
    ``postgres`` user cannot reach ``base_dir``, under a fresh folder in the system temp folder)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl); apt-get install postgresql")
    as_user: list[str] = []
    scratch: Path | None = None
    root = Path(base_dir)
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        runner = shutil.which("runuser")
        if not runner:
            raise PostgresUnavailable("running as root without runuser: cannot start PostgreSQL as postgres")
        as_user = [runner, "-u", "postgres", "--"]
        probe = subprocess.run([*as_user, "test", "-x", str(root)], capture_output=True, check=False)
        if probe.returncode != 0:  # pytest's tmp_path is private to root
            root = scratch = Path(tempfile.mkdtemp(prefix="refute-pg-"))
            os.chmod(root, 0o755)
    folder = root / f"pg-{os.getpid()}-{_free_port()}"
    folder.mkdir()
    data, sockets = folder / "data", folder / "sock"
    sockets.mkdir()
    if as_user:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    init = subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                           "--no-sync", "-E", "UTF8", "--locale=C"], capture_output=True, text=True, check=False)
    if init.returncode != 0:
        raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
    port = _free_port()
    options = (f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off -c max_connections=60")
    server = PgServer(bin_dir, data, port, as_user, scratch)
    started = subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
                              "-l", str(folder / "server.log"), "-w", "-t", "60", "start"],
                             capture_output=True, text=True, check=False)
    if started.returncode != 0:
        log = (folder / "server.log").read_text(errors="replace")[-800:] if (folder / "server.log").exists() else ""
        server.stop()
        raise PostgresUnavailable(f"pg_ctl start failed: {started.stderr.strip()[-300:]} {log}")
    return server

"""A throwaway Postgres cluster for the shared-catalog tests: Debian's `postgresql` binaries, run as the
`postgres` user (initdb refuses root) in a temporary folder it owns, on a free port of 127.0.0.1; stopped and
deleted at the end. Where Postgres is missing or cannot start, the tests using it are skipped with the reason."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

BIN_DIRS = [Path(f"/usr/lib/postgresql/{version}/bin") for version in (17, 16, 15, 14, 13)]
USER = "postgres"
DATABASE = "callaro"
# The server's own message locale is not `C`, so a test can tell that the pipeline's sessions set it to `C`
LOCALE = ("--locale=C.UTF-8", "--lc-messages=C.UTF-8")


class PostgresUnavailable(RuntimeError):
    """Why no throwaway cluster can run here (the tests using it are skipped with this message)."""


def bin_dir() -> Path:
    on_path = shutil.which("initdb")
    for folder in [*BIN_DIRS, *([Path(on_path).resolve().parent] if on_path else [])]:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "createdb")):
            return folder
    raise PostgresUnavailable(
        "Postgres is not installed (no initdb/pg_ctl/createdb; Debian: apt-get install postgresql)"
    )


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(*command: str | Path) -> list[str]:
    """initdb and pg_ctl refuse to run as root: run them as the `postgres` user when we are root."""
    args = [str(part) for part in command]
    if os.geteuid() != 0:
        return args
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresUnavailable("running as root without runuser: cannot start Postgres as the postgres user")
    return [runuser, "-u", USER, "--", *args]


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise PostgresUnavailable(f"{what} failed: {detail[-1] if detail else done.returncode}")


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Yields a libpq conninfo for an empty database `callaro` on a fresh cluster."""
    binaries = bin_dir()
    if os.geteuid() == 0:
        try:
            import pwd

            owner = pwd.getpwnam(USER)
        except KeyError:
            raise PostgresUnavailable(f"running as root and there is no {USER} user to run Postgres") from None
    root = Path(tempfile.mkdtemp(prefix="callaro-pg-"))
    try:
        if os.geteuid() == 0:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        root.chmod(0o700)
        data, port = root / "data", free_port()
        _run(_as_postgres(binaries / "initdb", "-D", data, "-U", USER, "-A", "trust", "-E", "UTF8", *LOCALE), "initdb")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=50"
        _run(
            _as_postgres(binaries / "pg_ctl", "-D", data, "-l", root / "server.log", "-o", options, "-w", "start"),
            "pg_ctl start",
        )
        try:
            _run(
                _as_postgres(binaries / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE),
                "createdb",
            )
            yield f"dbname={DATABASE} host=127.0.0.1 port={port} user={USER}"
        finally:
            subprocess.run(
                _as_postgres(binaries / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"),
                capture_output=True,
                timeout=60,
                check=False,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def create_database(conninfo: str, name: str) -> str:
    """A new empty database on the cluster of `conninfo`; returns its conninfo (one per test: independent lakes)."""
    parts = dict(part.split("=", 1) for part in conninfo.split())
    binaries = bin_dir()
    command = [binaries / "createdb", "-h", parts["host"], "-p", parts["port"], "-U", parts["user"], name]
    _run(_as_postgres(*command), "createdb")
    parts["dbname"] = name
    return " ".join(f"{key}={value}" for key, value in parts.items())

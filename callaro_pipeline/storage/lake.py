"""The engine: DuckDB with the DuckLake extension — where the catalog and the data files are, and how to attach.

Catalog `CALLARO_CATALOG`: `sqlite:PATH` (default `CALLARO_HOME/lake/catalog.sqlite`), `postgres:<libpq
connection string>` for a shared catalog, or a DuckDB catalog file path. Data files `CALLARO_DATA_PATH`
(default `CALLARO_HOME/lake/data/`; a shared folder or `s3://bucket/prefix/`). Several processes may read and
write at once; readers see committed snapshots and wait at most for a commit being written.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

from callaro_pipeline.core.errors import CallaroError
from callaro_pipeline.core.project_paths import whole_number_setting

LAKE = "lake"
# The wheels' import names: DuckDB's extension repository is unreachable offline (these machines, many users'
# CI), and `LOAD ducklake` would try to download. The `duckdb-extension-*` wheels carry the loadable files for
# exactly the pinned DuckDB (1.5.5); `-sqlite` has the wrong entry point, hence `sqlite_scanner`.
_WHEELS = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
}
# DuckLake retries a commit that conflicts with another writer's this many times (its default 10 is exceeded
# under concurrent imports: duckdb/ducklake#1283, #233).
MAX_COMMIT_RETRIES = 100
# How long a session waits for the SQLite catalog's lock before "database is locked". The sqlite scanner's
# default, 5 s, is too short: in rollback-journal mode a commit waits for every read transaction in progress
# (an analyst's long query holds one), and new sessions wait behind that commit, so under load imports, dbt
# runs and analysts failed each other (measured: 14 errors in 2 minutes of 3 writers and 4 readers, none with
# this wait; duckdb/ducklake#128). The wait only bounds a stuck process. WAL, where readers and writers do not
# wait for each other, is not used: a WAL catalog cannot be read from a read-only home (SQLite needs to create
# its -shm file there).
CATALOG_BUSY_TIMEOUT_MS = 60_000


# DuckDB verifies an extension's signature on every LOAD, ~0.7 s per instance for these ~35 MB files (a new
# instance per home, and per process). The files come from wheels whose hashes uv.lock pins and uv checks at
# install, so the instance skips the check; its SQL still cannot load anything (external access is off).
INSTANCE_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "custom_user_agent": "callaro",
    "allow_unsigned_extensions": True,
}
THREADS_VARIABLE = "CALLARO_THREADS"


def thread_limit() -> int | None:
    """DuckDB's threads per process when `CALLARO_THREADS` is set (default: one per core). A machine running
    several imports (or test workers) at once does better with fewer each: a small statement on the lake costs
    ~30% less CPU on one thread than on two, waking worker threads for a dozen catalog queries."""
    return whole_number_setting(THREADS_VARIABLE)


def instance_config() -> dict[str, str | bool | int | float | list[str]]:
    """The configuration of every DuckDB instance the pipeline opens on the lake."""
    threads = thread_limit()
    return INSTANCE_CONFIG if threads is None else {**INSTANCE_CONFIG, "threads": threads}


class LakeUnavailable(CallaroError):
    """The catalog or the data path cannot be opened (one clear line, nothing written)."""


class CatalogBusy(TimeoutError):
    """Another machine held the shared catalog's writer lock for longer than the wait."""


class LakeNotCreated(LakeUnavailable):
    """A read-only attach found no DuckLake in the catalog (a shared catalog no writer has initialised yet)."""


@dataclass(frozen=True)
class LakeLocation:
    catalog: str  # the DuckLake catalog part after `ducklake:` (e.g. `sqlite:/home/lake/catalog.sqlite`)
    data_path: str  # absolute folder path or URL, always ending in `/` (DuckLake stores it as given)

    @classmethod
    def for_home(cls, home: Path, catalog: str | None = None, data_path: str | None = None) -> LakeLocation:
        catalog = catalog or os.environ.get("CALLARO_CATALOG") or f"sqlite:{home / 'lake' / 'catalog.sqlite'}"
        data_path = data_path or os.environ.get("CALLARO_DATA_PATH") or str(home / "lake" / "data")
        return cls(catalog=_absolute_catalog(catalog), data_path=_absolute_folder(data_path))

    @property
    def kind(self) -> str:
        """sqlite | postgres | duckdb"""
        prefix = self.catalog.split(":", 1)[0]
        return prefix if prefix in ("sqlite", "postgres") else "duckdb"

    @property
    def local_catalog_file(self) -> Path | None:
        if self.kind == "postgres":
            return None
        return Path(self.catalog.split(":", 1)[1] if self.kind == "sqlite" else self.catalog)

    def exists(self) -> bool:
        """A local catalog that was never created reads as an empty lake (a shared one is assumed to exist)."""
        file = self.local_catalog_file
        return file is None or file.is_file()

    @property
    def display(self) -> str:
        """The catalog for messages: a conninfo's password never reaches a log or a terminal."""
        return mask_passwords(self.catalog) if self.kind == "postgres" else self.catalog

    def local_folders(self) -> list[Path]:
        """Folders the pipeline's connections may touch besides the home (DuckDB's allowed_directories)."""
        folders = []
        if not _is_url(self.data_path):
            folders.append(Path(self.data_path))
        if file := self.local_catalog_file:
            folders.append(file.parent)
        return folders

    @property
    def catalog_busy_timeout_ms(self) -> int | None:
        """The SQLite catalog's busy timeout (the other catalogs have no such option and refuse it)."""
        return CATALOG_BUSY_TIMEOUT_MS if self.kind == "sqlite" else None

    def attach_sql(self, *, read_only: bool) -> str:
        options = [f"DATA_PATH {_quote(self.data_path)}"]
        if read_only:
            options.append("READ_ONLY")
        if self.catalog_busy_timeout_ms is not None:
            options.append(f"META_BUSY_TIMEOUT {self.catalog_busy_timeout_ms}")
        return f"ATTACH {_quote('ducklake:' + self.catalog)} AS {LAKE} ({', '.join(options)})"


def load_extensions(con: duckdb.DuckDBPyConnection, kind: str = "sqlite") -> None:
    """Load DuckLake and the catalog's scanner: from the installed wheel, else by name (already installed)."""
    names = ["ducklake"] + {"sqlite": ["sqlite_scanner"], "postgres": ["postgres_scanner"]}.get(kind, [])
    for name in names:
        _load(con, name)


def _load(con: duckdb.DuckDBPyConnection, name: str) -> None:
    path = extension_file(name)
    con.execute(f"LOAD {_quote(str(path)) if path else name}")


def extension_file(name: str) -> Path | None:
    """The loadable file inside the `duckdb-extension-<name>` wheel for this DuckDB version, if installed."""
    try:
        folder = resources.files(_WHEELS[name]) / "extensions" / f"v{duckdb.__version__}"
    except ModuleNotFoundError:
        return None
    candidate = Path(str(folder)) / f"{name}.duckdb_extension"
    return candidate if candidate.is_file() else None


def attach(con: duckdb.DuckDBPyConnection, location: LakeLocation, *, read_only: bool) -> None:
    """Attach the lake as `lake` and make it the default database."""
    load_extensions(con, location.kind)
    if location.kind == "postgres":
        english_server_messages()
    if not read_only:
        for folder in location.local_folders():
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LakeUnavailable(f"cannot create {folder}: {exc.strerror or exc}") from None
    try:
        _attach_statement(con, location, read_only=read_only)
    except duckdb.Error as exc:
        text = str(exc).strip()
        if read_only and "creating a new DuckLake is explicitly disabled" in text:
            raise LakeNotCreated(f"no lake in the warehouse catalog {location.display} yet") from None
        raise LakeUnavailable(f"cannot open the warehouse catalog {location.display}: {_first_line(exc)}") from None
    con.execute(f"USE {LAKE}")
    if not read_only:
        con.execute(f"SET ducklake_max_retry_count = {MAX_COMMIT_RETRIES}")


# Writers of one home take turns through a file lock (warehouse.py); machines sharing a Postgres catalog also take
# this Postgres advisory lock (per database). DuckLake cannot run two machines' writes at once: a commit that
# inserts into a table another commit deleted from fails for good ("Transaction conflict - attempting to insert
# into table with index ... but another transaction has deleted from it"), and a replace is a delete + insert.
CATALOG_LOCK_KEY = 0x43414C4C41524F  # "CALLARO"
_LOCK_INSTANCES: dict[LakeLocation, duckdb.DuckDBPyConnection] = {}


@contextlib.contextmanager
def catalog_write_lock(location: LakeLocation, timeout_seconds: float) -> Iterator[None]:
    """Hold the shared catalog's writer lock: a transaction-scoped advisory lock in a session of its own, released
    at the end or when this process dies (the server ends the session). CatalogBusy when it stays taken."""
    if location.kind != "postgres":
        yield
        return
    con = _lock_instance(location).cursor()
    try:
        con.execute("BEGIN TRANSACTION")
        deadline = time.monotonic() + timeout_seconds
        while not con.execute(
            f"SELECT * FROM postgres_query('catalog_lock', 'SELECT pg_try_advisory_xact_lock({CATALOG_LOCK_KEY})')"  # noqa: S608 - constant
        ).fetchone()[0]:
            if time.monotonic() > deadline:
                raise CatalogBusy
            time.sleep(0.05)
        yield
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        con.close()


def _lock_instance(location: LakeLocation) -> duckdb.DuckDBPyConnection:
    if location not in _LOCK_INSTANCES:
        english_server_messages()
        instance = duckdb.connect(config=instance_config())
        _load(instance, "postgres_scanner")
        conninfo = location.catalog.split(":", 1)[1]
        try:
            instance.execute(f"ATTACH {_quote(conninfo)} AS catalog_lock (TYPE postgres)")
        except duckdb.Error as exc:
            raise LakeUnavailable(f"cannot open the warehouse catalog {location.display}: {_first_line(exc)}") from None
        _LOCK_INSTANCES[location] = instance
    return _LOCK_INSTANCES[location]


def _first_line(exc: Exception) -> str:
    """An error's first line, at most 300 characters, with any password masked."""
    text = str(exc).strip()
    return mask_passwords(text.splitlines()[0] if text else type(exc).__name__)[:300]


def _attach_statement(con: duckdb.DuckDBPyConnection, location: LakeLocation, *, read_only: bool) -> None:
    """ATTACH; on a shared catalog, two machines' first writable attaches may both try to create DuckLake's
    metadata tables, and the second fails ("Failed to initialize DuckLake: ... duplicate key value"): once the
    first has committed, attaching again finds the lake it created."""
    for attempt in range(_INIT_ATTEMPTS):
        try:
            con.execute(location.attach_sql(read_only=read_only))
            return
        except duckdb.Error as exc:
            racing = not read_only and location.kind == "postgres" and "Failed to initialize DuckLake" in str(exc)
            if not racing or attempt + 1 == _INIT_ATTEMPTS:
                raise
            time.sleep(0.1 * (attempt + 1))


_INIT_ATTEMPTS = 5


def english_server_messages() -> None:
    """Postgres sessions opened by this process (libpq reads PGOPTIONS at connect) get `lc_messages=C`:
    DuckLake recognises a retryable commit conflict by the server's English message (duckdb/ducklake#1311).
    Appended to any PGOPTIONS the user set (the last `-c` of a setting wins)."""
    current = os.environ.get("PGOPTIONS", "")
    if not current.rstrip().endswith(_ENGLISH):
        os.environ["PGOPTIONS"] = f"{current} {_ENGLISH}".strip()


_ENGLISH = "-c lc_messages=C"
# `password=...` of a key/value conninfo (quoted or not), `user:...@` of a URI one
_PASSWORDS = (re.compile(r"(password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\S+)"), re.compile(r"(://[^:/@\s]*:)[^@\s]*(?=@)"))


def mask_passwords(text: str) -> str:
    for pattern in _PASSWORDS:
        text = pattern.sub(r"\1***", text)
    return text


def _absolute_catalog(catalog: str) -> str:
    prefix, sep, rest = catalog.partition(":")
    if sep and prefix == "sqlite":
        return f"sqlite:{Path(rest).expanduser().resolve()}"
    if sep and prefix == "postgres":
        return catalog
    return str(Path(catalog).expanduser().resolve())


def _absolute_folder(path: str) -> str:
    """DuckLake stores DATA_PATH as given and resolves a relative one against the working directory; a later
    attach with another spelling fails, so the path is made absolute and always ends in one `/`."""
    text = path if _is_url(path) else str(Path(path).expanduser().resolve())
    return text.rstrip("/") + "/"


def _is_url(path: str) -> bool:
    return "://" in path


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_INSTANCES: OrderedDict[tuple, duckdb.DuckDBPyConnection] = OrderedDict()
_KEPT_INSTANCES = 8  # tests open many homes in one process; an evicted instance closes with its last cursor


def lake_instance(location: LakeLocation, home: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """This process's DuckDB instance with `location` attached and the pipeline's restrictions set."""
    key = (location, home, read_only)
    if key in _INSTANCES:
        _INSTANCES.move_to_end(key)
        return _INSTANCES[key]
    instance = duckdb.connect(config=instance_config())
    attach(instance, location, read_only=read_only)
    restrict(instance, home, location)
    _INSTANCES[key] = instance
    while len(_INSTANCES) > _KEPT_INSTANCES:
        _INSTANCES.popitem(last=False)
    return instance


def restrict(con: duckdb.DuckDBPyConnection, home: Path, location: LakeLocation) -> None:
    """Pipeline SQL reads no file outside the home and the lake's folders (tables and registered frames only),
    prints no progress bars, and cannot change these settings back."""
    folders = [home, *location.local_folders()]
    con.execute(f"SET allowed_directories=[{', '.join(_quote(str(folder) + '/') for folder in folders)}]")
    con.execute("SET enable_external_access=false")
    con.execute("SET enable_progress_bar=false")  # long statements would draw bars on stderr
    set_home_variable(con, home)
    con.execute("SET lock_configuration=true")


def set_home_variable(con: duckdb.DuckDBPyConnection, home: Path) -> None:
    """`getvariable('callaro_home')`: where the pipeline keeps stored copies (warehouse.home_of)."""
    con.execute(f"SET VARIABLE callaro_home = {_quote(str(home))}")

"""The one storage layer: a DuckDB file behind a cross-process write lock, with transactional partition writes.

Why not the stock dagster-duckdb IO managers: they replace a partition by DELETE then INSERT in separate
statements, skip writing an empty frame after the delete, and insert by position. Here every write is one
transaction (stage, delete, insert BY NAME, commit), and an empty frame replaces a partition only when the
caller says so. Moving to a multi-writer engine (DuckLake, MotherDuck) changes `Warehouse.connect` only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from filelock import FileLock, Timeout

from callaro_pipeline.config import Paths, callaro_home

SCHEMA_DIR = Path(__file__).parent / "sql"


def schema_sql() -> str:
    """All DDL, one file per stage that owns tables (`sql/NN_<stage>.sql`), applied in name order."""
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(SCHEMA_DIR.glob("*.sql")))


class WarehouseBusy(RuntimeError):
    """The warehouse stayed locked by another writer longer than the configured wait."""


class Warehouse(dg.ConfigurableResource):
    """The DuckDB warehouse. Every pipeline connection holds a cross-process file lock, so concurrent runs
    queue instead of failing on DuckDB's own lock; analysts read the published snapshot instead."""

    home: str = ""
    lock_timeout_seconds: float = 900.0

    @property
    def paths(self) -> Paths:
        return Paths(Path(self.home).resolve() if self.home else callaro_home())

    @contextlib.contextmanager
    def lock(self) -> Iterator[Path]:
        """Hold the cross-process writer lock (dbt runs take it too); yields the warehouse path."""
        paths = self.paths
        paths.home.mkdir(parents=True, exist_ok=True)
        file_lock = FileLock(str(paths.write_lock))
        try:
            file_lock.acquire(timeout=self.lock_timeout_seconds)
        except Timeout:
            raise WarehouseBusy(
                f"the warehouse stayed busy for {self.lock_timeout_seconds:.0f}s; try again later"
            ) from None
        try:
            yield paths.warehouse
        finally:
            file_lock.release()

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short read-write session under the write lock; the schema exists; external files limited to home."""
        paths = self.paths
        with self.lock():
            con = self._open(paths.warehouse)
            try:
                home = str(paths.home).replace("'", "''")
                con.execute(f"SET allowed_directories=['{home}/']")
                con.execute("SET enable_external_access=false")
                con.execute("SET enable_progress_bar=false")  # long statements would draw bars on stderr
                con.execute("SET lock_configuration=true")
                legacy_audiences = _set_legacy_audiences_aside(con)
                con.execute(schema_sql())
                if legacy_audiences:
                    _convert_legacy_audiences(con)
                yield con
            finally:
                con.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only session for commands that only read (`report`, `uploads`, `audience`, `contacts export`):
        no writer lock, no lock file, no schema work, nothing in the home is created or touched, so they work on
        a read-only home. It waits a bounded time for a writer holding the file. A home with no warehouse yet
        reads as an empty one (an in-memory warehouse with the schema)."""
        paths = self.paths
        if paths.warehouse.is_file():
            con = open_readonly(paths.warehouse, wait_seconds=self.lock_timeout_seconds)
            if _schema_behind(con) and os.access(paths.home, os.W_OK):
                # a warehouse last written by an older version: one write session brings its schema up to date
                con.close()
                with self.connect() as writer:
                    yield writer
                return
        else:
            con = duckdb.connect(":memory:")
            con.execute(schema_sql())
        try:
            home = str(paths.home).replace("'", "''")
            con.execute(f"SET allowed_directories=['{home}/']")
            con.execute("SET enable_external_access=false")
            con.execute("SET enable_progress_bar=false")
            con.execute("SET lock_configuration=true")
            yield con
        finally:
            con.close()

    def _open(self, path: Path) -> duckdb.DuckDBPyConnection:
        """DuckDB's own file lock: an analyst who opened the live file (not the read-only copy) delays the
        write until they close it, up to the lock timeout, instead of failing the run."""
        deadline = time.monotonic() + self.lock_timeout_seconds
        while True:
            try:
                return duckdb.connect(str(path))
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    raise WarehouseBusy(
                        f"{path.name} stayed open in another program for {self.lock_timeout_seconds:.0f}s; "
                        f"analysts should read {self.paths.warehouse_snapshot.name} instead"
                    ) from None
                time.sleep(0.2)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def query(self, sql: str, params: list | tuple | None = None) -> pl.DataFrame:
        with self.connect() as con:
            return con.execute(sql, params or []).pl()

    def publish_snapshot(self) -> Path:
        """Copy the warehouse to the analysts' read-only file, atomically (readers keep the old inode)."""
        paths = self.paths
        with self.connect() as con:
            con.execute("CHECKPOINT")
            tmp = paths.warehouse_snapshot.with_suffix(".tmp")
            try:
                shutil.copyfile(paths.warehouse, tmp)
                os.replace(tmp, paths.warehouse_snapshot)
            finally:  # a copy cut short (full disk) is never left behind
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        return paths.warehouse_snapshot


SCHEMA_OBJECT = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|MACRO)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.I)


def _schema_behind(con: duckdb.DuckDBPyConnection) -> bool:
    """Some table, view or macro of the current schema is missing from this warehouse file."""
    expected = set(SCHEMA_OBJECT.findall(schema_sql()))
    present = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    present |= {
        name for (name,) in con.execute("SELECT function_name FROM duckdb_functions() WHERE NOT internal").fetchall()
    }
    return bool(expected - present)


def _set_legacy_audiences_aside(con: duckdb.DuckDBPyConnection) -> bool:
    """A warehouse from before audience versions kept every build's members and windows as tables under the
    names that are now views: rename them so the schema can be applied (`_convert_legacy_audiences` follows)."""
    tables = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_type = 'BASE TABLE' "
            "AND table_name IN ('audience_members', 'audience_call_windows')"
        ).fetchall()
    }
    if "audience_members" not in tables:
        return False
    con.execute("BEGIN TRANSACTION")
    con.execute("ALTER TABLE audience_members RENAME TO audience_members_v1")
    if "audience_call_windows" in tables:
        con.execute("ALTER TABLE audience_call_windows RENAME TO audience_call_windows_v1")
    else:
        con.execute(
            "CREATE TABLE audience_call_windows_v1 (build_id VARCHAR, contact_id VARCHAR, opens_utc TIMESTAMPTZ, closes_utc TIMESTAMPTZ)"
        )
    return True


def _convert_legacy_audiences(con: duckdb.DuckDBPyConnection) -> None:
    """Each old member row becomes a one-build version with a window key of its own, then the old tables go."""
    build_number = "CAST(regexp_extract(build_id, '([0-9]+)$', 1) AS BIGINT)"
    con.execute(
        f"""
        INSERT INTO audience_member_versions BY NAME
        SELECT campaign, {build_number} AS from_build, {build_number} + 1 AS to_build, contact_id,
               'member' AS outcome, phone_e164, timezone, timezone_candidates, timezone_source, external_id,
               agent_variables, consent_evidence, 'v1:' || build_id || ':' || contact_id AS window_key
        FROM audience_members_v1
        """  # noqa: S608 - constant text
    )
    con.execute(
        """
        INSERT INTO audience_build_windows
        SELECT build_id, 'v1:' || build_id || ':' || contact_id, opens_utc, closes_utc FROM audience_call_windows_v1
        """
    )
    con.execute(
        """
        UPDATE audience_builds AS b
        SET detail = json_merge_patch(coalesce(b.detail, '{}'), json_object('dnc_snapshot', s.dnc_snapshot))
        FROM (SELECT build_id, any_value(dnc_snapshot)::VARCHAR AS dnc_snapshot FROM audience_members_v1 GROUP BY 1) s
        WHERE s.build_id = b.build_id
        """
    )
    con.execute("DROP TABLE audience_members_v1")
    con.execute("DROP TABLE audience_call_windows_v1")
    con.execute("COMMIT")


def stage(con: duckdb.DuckDBPyConnection, name: str, df: pl.DataFrame) -> str:
    """Make a polars frame visible to SQL under `name` (registration works with external access disabled)."""
    con.register(name, df.to_arrow())
    return name


def replace_partition(
    con: duckdb.DuckDBPyConnection,
    table: str,
    upload_id: str,
    df: pl.DataFrame,
    *,
    allow_empty: bool = True,
) -> int:
    """Replace one upload's rows of `table` inside the caller's transaction: delete, then INSERT BY NAME.

    `table` is an identifier from the code, never user input. With `allow_empty=False` an empty frame is an
    error instead of a silent wipe.
    """
    if df.is_empty() and not allow_empty:
        raise ValueError(f"refusing to replace {table} for {upload_id} with zero rows")
    con.execute(f'DELETE FROM "{table}" WHERE upload_id = ?', [upload_id])  # noqa: S608 - identifier from code
    if df.is_empty():
        return 0
    frame = df.with_columns(pl.lit(upload_id).alias("upload_id")) if "upload_id" not in df.columns else df
    staged = stage(con, f"staged_{table}", frame)
    con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM {staged}')  # noqa: S608 - identifiers from code
    con.unregister(staged)
    return frame.height


def replace_raw_rows(con: duckdb.DuckDBPyConnection, upload_id: str, rows: pl.DataFrame, columns: list[str]) -> int:
    """Replace one upload's `raw_rows` (row_number, cells: the texts in column order) from a frame with
    row_number and one text column per name in `columns`, inside the caller's transaction.

    The cell lists are built by DuckDB from the columns as they are inserted: building them in polars first
    and converting the list column cost several times more (a million rows: ~11 s against ~4 s).
    """
    con.execute("DELETE FROM raw_rows WHERE upload_id = ?", [upload_id])
    if rows.is_empty():
        return 0
    # by position: a header such as "*" or "^.*$" must never be read as a wildcard or regex
    positions = [rows.get_column_index(name) for name in columns]
    staged = stage(
        con,
        "staged_raw_rows",
        rows.select(pl.col("row_number").cast(pl.Int64), *(pl.nth(p).alias(f"c{i}") for i, p in enumerate(positions))),
    )
    cells = ", ".join(f"c{i}" for i in range(len(columns)))
    con.execute(
        f"INSERT INTO raw_rows BY NAME SELECT ? AS upload_id, row_number, [{cells}]::VARCHAR[] AS cells FROM {staged}",  # noqa: S608 - identifiers from code
        [upload_id],
    )
    con.unregister(staged)
    return rows.height


def read_raw_rows(con: duckdb.DuckDBPyConnection, upload_id: str, columns: list[str]) -> pl.DataFrame:
    """One upload's `raw_rows` as row_number + one text column per name (missing cells are null), unpacked by
    DuckDB (unpacking the cell lists in polars was several times slower on a million rows)."""
    cells = ", ".join(f"cells[{i + 1}] AS c{i}" for i in range(len(columns)))
    frame = con.execute(
        f"SELECT row_number{', ' if cells else ''}{cells} FROM raw_rows WHERE upload_id = ? ORDER BY row_number",  # noqa: S608
        [upload_id],
    ).pl()
    return frame.rename({f"c{i}": name for i, name in enumerate(columns)})


def open_readonly(path: Path, *, wait_seconds: float = 30.0) -> duckdb.DuckDBPyConnection:
    """For analysts and tests: open a warehouse file read-only, waiting a bounded time for a writer to finish."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise WarehouseBusy(f"{path.name} is locked by a writer; gave up after {wait_seconds:.0f}s") from None
            time.sleep(0.2)

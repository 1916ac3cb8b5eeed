"""The one storage layer: a DuckLake lakehouse (storage/lake.py), transactional partition writes.

Why not the stock dagster-duckdb IO managers: they replace a partition by DELETE then INSERT in separate
statements, skip writing an empty frame after the delete, and insert by position. Here every write is one
transaction (stage, delete, insert BY NAME, commit), and an empty frame replaces a partition only when the
caller says so. `Warehouse` is dagster-duckdb's `DuckDBResource` (an in-memory DuckDB per session) with the
lake attached as the default database.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from dagster_duckdb import DuckDBResource
from filelock import FileLock, Timeout

from callaro_pipeline.core.project_paths import Paths, callaro_home
from callaro_pipeline.storage import migrations
from callaro_pipeline.storage.lake import (
    LAKE,
    CatalogBusy,
    LakeLocation,
    LakeNotCreated,
    LakeUnavailable,
    catalog_write_lock,
    lake_instance,
    restrict,
    set_home_variable,
)

__all__ = ["EngineError", "EngineWriteError", "LakeUnavailable", "Warehouse", "WarehouseBusy"]

# The engine's own failures, named here so callers above storage (the command line) catch them without
# importing DuckDB: a failed write (full disk, read-only file) is an EngineWriteError, any other an EngineError.
EngineWriteError = duckdb.IOException
EngineError = duckdb.Error


# Lakes this process brought to (or found at) the current schema: sessions skip the check (~10-50 ms each on a
# SQLite catalog). A lake migrated by a newer version elsewhere is ahead, never behind, of this process's code.
_CURRENT_SCHEMA: set[LakeLocation] = set()


class WarehouseBusy(RuntimeError):
    """The warehouse stayed locked by another writer longer than the configured wait."""


class Warehouse(DuckDBResource):
    """The lakehouse. Write sessions hold a cross-process file lock (writers of one home queue instead of
    conflicting); reads take no lock and see the last committed snapshot.

    `catalog` / `data_path` default to CALLARO_CATALOG / CALLARO_DATA_PATH, else a SQLite catalog and a data
    folder under the home (storage/lake.py)."""

    database: str = ":memory:"  # the lake is attached to an in-memory DuckDB
    home: str = ""
    catalog: str = ""
    data_path: str = ""
    lock_timeout_seconds: float = 900.0

    @property
    def paths(self) -> Paths:
        return Paths(Path(self.home).resolve() if self.home else callaro_home())

    @property
    def location(self) -> LakeLocation:
        return LakeLocation.for_home(self.paths.home, self.catalog or None, self.data_path or None)

    @contextlib.contextmanager
    def lock(self) -> Iterator[LakeLocation]:
        """Hold the cross-process writer lock (dbt runs take it too); yields the lake's location."""
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
            location = self.location
            # machines sharing a Postgres catalog have no file lock in common: they take turns in the catalog
            with catalog_write_lock(location, self.lock_timeout_seconds):
                yield location
        except CatalogBusy:
            raise WarehouseBusy(
                f"the shared catalog stayed locked by another machine for {self.lock_timeout_seconds:.0f}s; "
                "try again later"
            ) from None
        finally:
            file_lock.release()

    @contextlib.contextmanager
    def get_connection(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A session (cursor) on this process's DuckDB instance for the lake, with the lake as default database.

        One instance per lake and process, not one per session: verifying the extensions' signatures when they
        are loaded costs ~0.7 s per instance (storage/lake.py)."""
        instance = lake_instance(self.location, self.paths.home, read_only=read_only)
        con = instance.cursor()
        try:
            con.execute(f"USE {LAKE}")
            set_home_variable(con, self.paths.home)  # variables belong to a session, not the instance
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write session under the write lock; the schema is current; external files limited to home."""
        with self.lock(), self.get_connection() as con:
            if self.location not in _CURRENT_SCHEMA:
                migrations.migrate(con)
                _CURRENT_SCHEMA.add(self.location)
            yield con

    @contextlib.contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only session (`report`, `uploads`, `audience`, `sql`, ...): no lock, nothing in the home is
        created or touched, so it works on a read-only home and never waits for a writer. A home with no lake
        yet reads as an empty one (an in-memory warehouse with the schema), and so does a shared catalog that no
        writer has initialised yet."""
        location = self.location
        if not self._lake_exists(location):
            with contextlib.closing(duckdb.connect()) as con:
                con.execute(migrations.schema_sql())
                restrict(con, self.paths.home, location)
                yield con
            return
        writable = os.access(self.paths.home, os.W_OK)
        with self.get_connection(read_only=not writable) as con:
            if not writable or self.location in _CURRENT_SCHEMA or not migrations.pending(con):
                yield con
                return
        # a lake last written by an older version: one write session brings its schema up to date
        with self.connect() as writer:
            yield writer

    def _lake_exists(self, location: LakeLocation) -> bool:
        """A local catalog exists as a file; a shared one when a read-only attach finds a DuckLake in it (the
        instance is kept for the reads that follow)."""
        if location.kind != "postgres" or location in _CURRENT_SCHEMA:
            return location.exists()
        try:
            lake_instance(location, self.paths.home, read_only=True)
        except LakeNotCreated:
            return False
        return True

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


def home_of(con: duckdb.DuckDBPyConnection) -> Paths:
    """The home of a pipeline connection (reads of stored copies must stay inside it)."""
    home = con.execute("SELECT getvariable('callaro_home')").fetchone()[0]
    return Paths(Path(home)) if home else Paths(callaro_home())


def stage(con: duckdb.DuckDBPyConnection, name: str, df: pl.DataFrame) -> str:
    """Make a polars frame visible to SQL under `name` (registration works with external access disabled)."""
    con.register(name, df.to_arrow())
    return name


def single_row(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple[Any, ...]:
    """The one row of an aggregate query or of a write's count (DuckDB types `fetchone()` as Optional)."""
    row = con.execute(sql, params).fetchone()
    if row is None:
        raise RuntimeError("the query returned no row")
    return row


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

"""The one storage layer: a DuckDB file behind a cross-process write lock, with transactional partition writes.

Why not the stock dagster-duckdb IO managers: they replace a partition by DELETE then INSERT in separate
statements, skip writing an empty frame after the delete, and insert by position. Here every write is one
transaction (stage, delete, insert BY NAME, commit), and an empty frame replaces a partition only when the
caller says so. Moving to a multi-writer engine (DuckLake, MotherDuck) changes `Warehouse.connect` only.
"""

from __future__ import annotations

import contextlib
import os
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
                con.execute("SET lock_configuration=true")
                con.execute(schema_sql())
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
            shutil.copyfile(paths.warehouse, tmp)
            os.replace(tmp, paths.warehouse_snapshot)
        return paths.warehouse_snapshot


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

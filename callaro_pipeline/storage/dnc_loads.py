"""Loading DNC lists into the warehouse: manual numbers, list files (full snapshots, change lists), audited
removals. Reading the files is `callaro_pipeline.core.dnc_files`; what the lists say is
`callaro_pipeline.storage.suppression`.

Storage (sql/20_dnc.sql): numbers are BIGINT E.164 digits without '+', one row per (load, number) in
`dnc_numbers`; every load is a `dnc_loads` row with its stored file copy and sha256; removals are events in
`dnc_removals`. Nothing is ever deleted: a number is listed when its latest event still in force is an add.

For `national`, a full snapshot replaces earlier events for the area codes it covers; for every other source a
full file only adds numbers, and numbers leave those lists through audited removals only, so a partial internal
export can never silently unlist anyone. A full snapshot that shrank beyond normal churn raises
`DncUnavailable` unless the operator confirms it (`allow_shrink`): national snapshots per area code (more than
2% fewer numbers in any area code the file covers, the message names them), other lists as a whole (more than
10%). Nothing is written then, and the previous snapshot stays current. A national full snapshot records the
area codes it covers (`dnc_load_area_codes`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl

from callaro_pipeline.core.dnc_files import (
    DncFileRefused,
    area_code_counts,
    check_source,
    normalize_to_numbers,
    read_numbers,
)
from callaro_pipeline.core.errors import ConfigError, DncUnavailable
from callaro_pipeline.storage.warehouse import home_of, stage

FILE_KINDS = ("full", "add", "delete")
MAX_SHRINK = 0.10
# A national snapshot loses a few numbers per area code per month (disconnects, expiries): more than this share
# of any area code's numbers gone is a truncated file, not churn.
MAX_AREA_CODE_SHRINK = 0.02


@dataclass
class DncLoadResult:
    load_id: str
    source: str
    rows_loaded: int
    rows_rejected: int
    snapshot_date: date | None


def add_numbers(
    con: duckdb.DuckDBPyConnection,
    phones: list[str],
    *,
    source: str = "internal",
    reason: str | None = None,
    default_region: str = "US",
) -> DncLoadResult:
    """Add numbers typed in any format; invalid ones are counted as rejected. None valid: DncUnavailable."""
    check_source(source)
    numbers, rejected = normalize_to_numbers(pl.Series("phone", phones, dtype=pl.Utf8), default_region)
    if numbers.is_empty():
        raise DncUnavailable(f"none of the {len(phones)} given numbers is a valid phone number: nothing added")
    with _atomic(con):
        load_id = _record_load(con, source=source, kind="manual", rows_loaded=numbers.height, rows_rejected=rejected)
        _insert_numbers(con, numbers, source=source, load_id=load_id, reason=reason)
    return DncLoadResult(load_id, source, numbers.height, rejected, None)


def import_dnc_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    source: str,
    snapshot_date: date | None = None,
    kind: str = "full",
    default_region: str = "US",
    allow_shrink: bool = False,
) -> DncLoadResult:
    """Load a DNC file: a CSV with a phone column, or registry layouts (bare 10-digit or `areacode,number`
    lines; full snapshot or change list). Any unreadable line refuses the whole file (DncFileRefused).

    The file's bytes are kept under `Paths.dnc_files` with their sha256. `snapshot_date` defaults to the
    file's modification date (when it was downloaded), never to today, so an old file does not look fresh.
    `allow_shrink`: the operator confirms that a full snapshot much smaller than the previous one is real.
    """
    check_source(source)
    if kind not in FILE_KINDS:
        raise ConfigError(f"DNC file kind must be one of {', '.join(FILE_KINDS)}, not {kind!r}")
    path = Path(path)
    stored, sha256 = _store_copy(path, home_of(con).dnc_files / _source_dir(source))
    snapshot = snapshot_date or datetime.fromtimestamp(path.stat().st_mtime, UTC).date()
    numbers, rejected = read_numbers(stored, path.name, source=source, default_region=default_region)
    if numbers.is_empty():
        raise DncFileRefused(f"DNC file {path.name} has no valid phone number: not loaded")
    area_codes = area_code_counts(numbers) if source == "national" else None
    with _atomic(con):
        if kind == "full" and not allow_shrink:
            _check_not_shrunk(con, source, numbers, path.name, area_codes)
        load_id = _record_load(
            con,
            source=source,
            kind=kind,
            rows_loaded=numbers.height,
            rows_rejected=rejected,
            file_name=path.name,
            stored_path=str(stored),
            sha256=sha256,
            snapshot_date=snapshot,
        )
        if kind == "delete":
            _insert_removals(con, numbers, source=source, load_id=load_id, reason=f"delete list {path.name}")
        else:
            _insert_file_numbers(con, numbers, load_id=load_id)
        if kind == "full" and source == "national" and area_codes is not None:
            _record_area_codes(con, area_codes, load_id)
    return DncLoadResult(load_id, source, numbers.height, rejected, snapshot)


def _check_not_shrunk(
    con: duckdb.DuckDBPyConnection,
    source: str,
    numbers: pl.DataFrame,
    file_name: str,
    area_codes: pl.DataFrame | None = None,
) -> None:
    """A full snapshot much smaller than the one it follows is more likely truncated than real: refuse it.

    National snapshots are compared area code by area code with the snapshot each area code currently rests
    on (a file cut at 96% of its lines loses the tail of one area code: a sum over area codes would hide it);
    area codes the file does not hold are not covered by it and keep their previous snapshot."""
    if source == "national":
        stage(con, "dnc_incoming_area_codes", area_code_counts(numbers) if area_codes is None else area_codes)
        try:
            shrunk = con.execute(
                """
                SELECT i.area_code, a.rows_loaded AS previous, i.rows_loaded AS incoming
                FROM dnc_incoming_area_codes i
                JOIN dnc_national_base b USING (area_code)
                JOIN dnc_loads l ON l.load_seq = b.base_seq
                JOIN dnc_load_area_codes a ON a.load_id = l.load_id AND a.area_code = i.area_code
                WHERE i.rows_loaded < (1 - ?) * a.rows_loaded
                ORDER BY (a.rows_loaded - i.rows_loaded) / a.rows_loaded DESC, i.area_code
                """,
                [MAX_AREA_CODE_SHRINK],
            ).fetchall()
        finally:
            con.unregister("dnc_incoming_area_codes")
        if shrunk:
            named = ", ".join(
                f"{code:03d} ({previous} -> {incoming}, -{(previous - incoming) / previous:.1%})"
                for code, previous, incoming in shrunk[:20]
            )
            more = f" and {len(shrunk) - 20} more" if len(shrunk) > 20 else ""
            raise DncUnavailable(
                f"the national DNC list shrank unexpectedly in {len(shrunk)} area code(s): {named}{more} "
                f"(more than {MAX_AREA_CODE_SHRINK:.0%} fewer numbers than the current snapshot); {file_name} not "
                "loaded, the previous snapshot stays current (if the registry really dropped them: --allow-shrink)"
            )
        return
    previous = con.execute(
        "SELECT arg_max(rows_loaded, load_seq) FROM dnc_loads WHERE source = ? AND kind = 'full'", [source]
    ).fetchone()[0]
    if previous and numbers.height < (1 - MAX_SHRINK) * previous:
        raise DncUnavailable(
            f"the {source} DNC list shrank unexpectedly: {file_name} has {numbers.height} numbers, the previous "
            f"full snapshot had {previous} (more than {MAX_SHRINK:.0%} fewer); not loaded (if real: --allow-shrink)"
        )


def _record_area_codes(con: duckdb.DuckDBPyConnection, area_codes: pl.DataFrame, load_id: str) -> None:
    stage(con, "dnc_area_codes_new", area_codes.with_columns(pl.lit(load_id).alias("load_id")))
    con.execute("INSERT INTO dnc_load_area_codes BY NAME SELECT * FROM dnc_area_codes_new")
    con.unregister("dnc_area_codes_new")


def _record_load(
    con: duckdb.DuckDBPyConnection,
    *,
    source: str,
    kind: str,
    rows_loaded: int,
    rows_rejected: int,
    file_name: str | None = None,
    stored_path: str | None = None,
    sha256: str | None = None,
    snapshot_date: date | None = None,
) -> str:
    loaded_at = _utc_now()
    load_id = f"dnc-{loaded_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    con.execute(
        """
        INSERT INTO dnc_loads (load_id, load_seq, source, kind, file_name, stored_path, sha256, snapshot_date,
                               rows_loaded, rows_rejected, loaded_at)
        SELECT ?, coalesce(max(load_seq), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM dnc_loads
        """,
        [load_id, source, kind, file_name, stored_path, sha256, snapshot_date, rows_loaded, rows_rejected, loaded_at],
    )
    return load_id


def _insert_numbers(
    con: duckdb.DuckDBPyConnection, numbers: pl.DataFrame, *, source: str, load_id: str, reason: str | None
) -> None:
    stage(con, "dnc_numbers_new", numbers.select("number"))
    con.execute(
        """
        INSERT INTO dnc_numbers (number, source, load_id, reason, added_at)
        SELECT number, ?, ?, ?, ? FROM dnc_numbers_new
        """,
        [source, load_id, reason, _utc_now()],
    )
    con.unregister("dnc_numbers_new")


def _insert_file_numbers(con: duckdb.DuckDBPyConnection, numbers: pl.DataFrame, *, load_id: str) -> None:
    """A file's numbers: the integers only, tied to their load (see dnc_file_numbers in sql/20_dnc.sql)."""
    (load_seq,) = con.execute("SELECT load_seq FROM dnc_loads WHERE load_id = ?", [load_id]).fetchone()
    stage(con, "dnc_file_numbers_new", numbers.select("number"))
    con.execute("INSERT INTO dnc_file_numbers SELECT ?, number FROM dnc_file_numbers_new", [load_seq])
    con.unregister("dnc_file_numbers_new")


def _insert_removals(
    con: duckdb.DuckDBPyConnection, numbers: pl.DataFrame, *, source: str, load_id: str, reason: str
) -> None:
    stage(con, "dnc_removals_new", numbers.select("number"))
    con.execute(
        """
        INSERT INTO dnc_removals (number, source, load_id, reason, removed_at)
        SELECT number, ?, ?, ?, ? FROM dnc_removals_new
        """,
        [source, load_id, reason, _utc_now()],
    )
    con.unregister("dnc_removals_new")


def _store_copy(path: Path, directory: Path) -> tuple[Path, str]:
    """Keep the file's bytes (content-addressed, so a re-download of the same file is stored once).

    Copied by the kernel, then hashed from the copy: half the time of hashing while copying in Python chunks
    on a 1 GB national file."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".incoming-{uuid.uuid4().hex}"
    try:
        shutil.copyfile(path, tmp)
        with tmp.open("rb") as copy:
            sha256 = hashlib.file_digest(copy, "sha256").hexdigest()
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DncUnavailable(f"DNC file {path.name} cannot be read ({exc.strerror or type(exc).__name__})") from None
    stored = directory / f"{sha256[:16]}-{_safe_file_name(path.name)}"
    if stored.exists():
        tmp.unlink()
    else:
        os.replace(tmp, stored)
    return stored, sha256


def _safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[-100:] or "dnc"


def _source_dir(source: str) -> str:
    return source.replace(":", "_")


@contextlib.contextmanager
def _atomic(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction: ours, or the caller's if one is open (DuckDB has no nested transactions, and a
    BEGIN inside one aborts it; inside a transaction current_transaction_id() is stable across statements)."""
    in_transaction = (
        con.execute("SELECT current_transaction_id()").fetchone()[0]
        == con.execute("SELECT current_transaction_id()").fetchone()[0]
    )
    if in_transaction:
        yield
        return
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)

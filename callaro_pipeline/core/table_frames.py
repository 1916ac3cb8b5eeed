"""What every reader shares: the read limits, the raw table it returns, frames built in chunks, unique column
names and the finishing of a read table."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import polars as pl

from callaro_pipeline.core.errors import NothingToImport, UnusableInput
from callaro_pipeline.core.project_paths import whole_number_setting

ROW_NUMBER = "row_number"

SAMPLE_RECORDS = 200
HEADER_SEARCH_ROWS = 50
_REPAIRABLE_NUMBER = r"^[0-9]{6,}\.0+$"
MEGABYTE = 1024 * 1024


@dataclass(frozen=True)
class ReadLimits:
    max_bytes: int = 512 * 1024 * 1024
    max_rows: int = 5_000_000
    max_columns: int = 500
    max_xlsx_uncompressed_bytes: int = 1024 * 1024 * 1024  # zip-bomb guard, checked before inflating

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReadLimits:
        """The defaults, overridden by CALLARO_MAX_UPLOAD_BYTES, CALLARO_MAX_ROWS, CALLARO_MAX_COLUMNS and
        CALLARO_MAX_XLSX_UNCOMPRESSED_BYTES (positive integers) where set."""
        values = {name: whole_number_setting(variable, environ) for name, variable in LIMIT_VARIABLES.items()}
        return cls(**{name: value for name, value in values.items() if value is not None})


LIMIT_VARIABLES = {
    "max_bytes": "CALLARO_MAX_UPLOAD_BYTES",
    "max_rows": "CALLARO_MAX_ROWS",
    "max_columns": "CALLARO_MAX_COLUMNS",
    "max_xlsx_uncompressed_bytes": "CALLARO_MAX_XLSX_UNCOMPRESSED_BYTES",
}


@dataclass
class RawTable:
    columns: list[str]
    rows: pl.DataFrame
    encoding: str | None
    delimiter: str | None
    header_row: int
    sheet: str | None
    malformed: pl.DataFrame = field(default_factory=lambda: _malformed_frame([]))
    repaired_cells: int = 0
    footer_rows: int = 0
    """summary lines under the data ("Grand Totals (10 records)") left out: they are not rows"""


def check_size(size: int, limits: ReadLimits) -> None:
    """Refuse a file over the byte limit from its size alone, before its bytes are read into memory."""
    if size > limits.max_bytes:
        raise UnusableInput(f"the file is {size_text(size)}; the limit is {size_text(limits.max_bytes)}")


def fit_width(record: list[str], width: int) -> list[str]:
    """Drop surplus trailing cells when all are blank (a lossless trim of spreadsheet padding)."""
    if len(record) > width and not any(cell.strip() for cell in record[width:]):
        return record[:width]
    return record


def chunk_frame(chunk: list[list[str]], first_row: int, width: int) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    lengths = list(map(len, chunk))
    if lengths.count(width) == len(chunk):
        return cells_frame(range(first_row, first_row + len(chunk)), chunk, width), []
    kept: list[list[str]] = []
    row_numbers: list[int] = []
    malformed: list[tuple[int, str]] = []
    for row_number, record, length in zip(itertools.count(first_row), chunk, lengths, strict=False):
        cells = fit_width(record, width) if length > width else record
        if len(cells) == width:
            kept.append(cells)
            row_numbers.append(row_number)
        elif any(cell.strip() for cell in record):
            malformed.append((row_number, f"the row has {length} cells but the header has {width}"))
    return cells_frame(row_numbers, kept, width), malformed


def cells_frame(row_numbers: range | list[int], records: list[list[str]], width: int) -> pl.DataFrame:
    """Positional columns c0..cN (C-level transpose): names are applied once at the end."""
    columns = list(zip(*records, strict=True)) if records else [()] * width
    return pl.DataFrame(
        [pl.Series(ROW_NUMBER, row_numbers, dtype=pl.Int64)]
        + [pl.Series(f"c{position}", values, dtype=pl.Utf8) for position, values in enumerate(columns)]
    )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Millions of short-lived lists trigger needless cyclic-GC passes (measured: halves the parse time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def cell_text(value: object) -> str:
    """Cell values as text without loss: integral numbers without `.0`, dates as ISO text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        # beyond 15 significant digits Excel itself has lost precision: keep the honest float text
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return "" if value is None else str(value)


def unique_column_names(header: list[str]) -> list[str]:
    """Header labels with whitespace collapsed; blanks become `column_<n>`, repeats `Phone (2)` (case-insensitive)."""
    seen = {ROW_NUMBER}
    names: list[str] = []
    for position, cell in enumerate(header, start=1):
        base = " ".join(cell.split()) or f"column_{position}"
        name, copy = base, 1
        while name.casefold() in seen:
            copy += 1
            name = f"{base} ({copy})"
        seen.add(name.casefold())
        names.append(name)
    return names


def finish_raw_table(
    frame: pl.DataFrame,
    columns: list[str],
    malformed: list[tuple[int, str]],
    *,
    encoding: str | None,
    delimiter: str | None,
    header_row: int,
    sheet: str | None,
    footer_rows: int = 0,
) -> RawTable:
    """Strip, blank -> null, lossless repair of `4155550134.0`, drop all-blank rows, apply the column names."""
    positional = [f"c{position}" for position in range(len(columns))]
    stripped_values = [pl.col(name).str.strip_chars() for name in positional]
    stripped = frame.with_columns(
        pl.when(value != "").then(value).alias(name) for name, value in zip(positional, stripped_values, strict=True)
    )
    damaged = [pl.col(name).str.contains(_REPAIRABLE_NUMBER) for name in positional]
    repaired_cells = stripped.select(pl.sum_horizontal(damaged).sum()).item()
    rows = (
        stripped.with_columns(
            pl.when(is_damaged).then(pl.col(name).str.replace(r"\.0+$", "")).otherwise(pl.col(name)).alias(name)
            for name, is_damaged in zip(positional, damaged, strict=True)
        )
        .filter(pl.any_horizontal(pl.col(positional).is_not_null()))
        .rename(dict(zip(positional, columns, strict=True)))
    )
    malformed_frame = _malformed_frame(malformed)
    if rows.is_empty() and malformed_frame.is_empty():
        raise NothingToImport("the file has a header but no data rows")
    return RawTable(
        columns=columns,
        rows=rows,
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_row,
        sheet=sheet,
        malformed=malformed_frame,
        repaired_cells=int(repaired_cells or 0),
        footer_rows=footer_rows,
    )


def _malformed_frame(malformed: list[tuple[int, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            ROW_NUMBER: pl.Series([row for row, _ in malformed], dtype=pl.Int64),
            "message": pl.Series([message for _, message in malformed], dtype=pl.Utf8),
        }
    )


def size_text(size: int) -> str:
    return f"{size / MEGABYTE:,.1f} MB" if size >= MEGABYTE else f"{size / 1024:,.1f} KB"

"""Files people open: the error report and every exported CSV, made safe for spreadsheets; the import summary."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

REPORT_COLUMNS = ["row_number", "column", "field", "code", "message", "value"]
# A cell a spreadsheet would evaluate: =, @, tab or CR first; or + / - first followed by anything that is not
# plain number punctuation ("+1 (415) 555-0134" and "-12.5" stay as they are, "-2+3" and "+cmd|..." do not).
FORMULA_START = r"^[=@\t\r]"
SIGNED_NON_NUMBER = r"^[+-].*[^0-9 ()./-]"
SUMMARY_COUNTS = (
    ("rows_read", "rows read"),
    ("imported", "imported"),
    ("rejected", "rejected"),
    ("duplicates", "duplicates"),
    ("skipped_existing", "already in the campaign"),
    ("merge_conflicts", "merge conflicts"),
    ("suppressed", "suppressed"),
    ("blocked", "held back (blocked)"),
)


def _inert(column: str) -> pl.Expr:
    text = pl.col(column)
    risky = text.str.contains(FORMULA_START) | text.str.contains(SIGNED_NON_NUMBER)
    return pl.when(risky).then(pl.lit("'") + text).otherwise(text).alias(column)


def make_inert(df: pl.DataFrame) -> pl.DataFrame:
    """Prefix `'` to every text cell a spreadsheet would run as a formula; other cells are left untouched."""
    text_columns = [name for name, dtype in df.schema.items() if dtype == pl.Utf8]
    return df.with_columns(_inert(name) for name in text_columns) if text_columns else df


def _flatten(df: pl.DataFrame) -> pl.DataFrame:
    """CSV has no nested values: lists become `a; b`, structs their JSON."""
    nested = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.List):
            nested.append(pl.col(name).cast(pl.List(pl.Utf8)).list.join("; "))
        elif isinstance(dtype, pl.Struct):
            nested.append(pl.col(name).struct.json_encode())
    return df.with_columns(nested) if nested else df


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(partial_path)`, then the partial file replaces `path`: readers see the old file or the whole new
    one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException:  # a write cut short (full disk, a value the format cannot hold) leaves nothing behind
        partial.unlink(missing_ok=True)
        raise
    return path


def write_csv_safely(df: pl.DataFrame, path: Path) -> Path:
    """Write a formula-inert CSV atomically."""
    return write_atomically(path, make_inert(_flatten(df)).write_csv)


def write_error_report(problems: pl.DataFrame, path: Path) -> Path:
    """The rejected-rows CSV: exactly REPORT_COLUMNS, one line per problem, in source row order."""
    report = problems.select(
        pl.col("row_number").cast(pl.Int64), *(pl.col(name).cast(pl.Utf8) for name in REPORT_COLUMNS[1:])
    ).sort("row_number", maintain_order=True)
    return write_csv_safely(report, path)


def _cell(value: Any) -> str:
    """Markdown table cell: pipes and line breaks would break the table."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]


def summary_markdown(summary: dict[str, Any]) -> str:
    """The import summary as markdown (Dagster metadata, `callaro report`). Only counts, check results, paths and
    timings are shown — never a cell value, so no personal data can leak through it.

    Reads: upload_id, campaign, status, the SUMMARY_COUNTS keys, problems_by_code {code: n}, checks
    [{name, passed, detail}], error_report, duplicates_file, timings {step: seconds}; missing keys are skipped."""
    title = " ".join(str(summary[key]) for key in ("campaign", "upload_id") if summary.get(key))
    lines = [f"### Import summary{': ' + _cell(title) if title else ''}", ""]
    overview = [("status", summary["status"])] if summary.get("status") else []
    overview += [(label, summary[key]) for key, label in SUMMARY_COUNTS if summary.get(key) is not None]
    overview += [
        (label, f"`{summary[key]}`")
        for key, label in (
            ("error_report", "error report"),
            ("merge_conflicts_report", "merge conflicts report"),
            ("duplicates_file", "duplicates file"),
        )
        if summary.get(key)
    ]
    lines += _table(("", ""), overview)
    sections = (
        ("Problems by code", ("code", "lines"), sorted((summary.get("problems_by_code") or {}).items())),
        (
            "Checks",
            ("check", "passed", "detail"),
            [(c.get("name"), bool(c.get("passed")), c.get("detail")) for c in summary.get("checks") or []],
        ),
        ("Timings", ("step", "seconds"), list((summary.get("timings") or {}).items())),
    )
    for heading, header, rows in sections:
        if rows:
            lines += ["", f"#### {heading}", "", *_table(header, rows)]
    return "\n".join(lines) + "\n"

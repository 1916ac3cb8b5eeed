"""Everything the command line prints: the import summary, JSON, tables, and the one-line notes on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import polars as pl

# `callaro sql` prints at most this many rows (the rest goes to a file with --out).
FRAME_ROW_LIMIT = 1000
FRAME_TEXT_LENGTH = 120


def print_json(value: Any) -> None:
    print(json.dumps(value, default=str, sort_keys=True))


def exit_code_for(summary: dict[str, Any]) -> int:
    if summary["status"] == "imported":
        return 0
    if summary["status"] == "blocked":
        return 1
    return int((summary.get("failure") or {}).get("exit_code", 2))


def report_failure(summary: dict[str, Any]) -> None:
    """A failed upload also says why on stderr, in one line (the summary itself goes to stdout)."""
    message = (summary.get("failure") or {}).get("message")
    if summary["status"] == "failed" and message:
        print(f"callaro: {' '.join(str(message).split())}", file=sys.stderr)


def report_rebuild(failed: list[str]) -> int:
    """After a change to the book: exit 1, with the reason on stderr, if an audience could not be rebuilt."""
    for campaign in failed:
        print(
            f"callaro: the audience of campaign {campaign} was not rebuilt (see the campaign_audiences run in the "
            "Dagster UI); its previous build stays current",
            file=sys.stderr,
        )
    return 1 if failed else 0


def print_summary(summary: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    print(f"upload     {summary['upload_id']}  (campaign {summary['campaign']})")
    print(f"status     {summary['status']}" + ("  [undone]" if summary.get("undone") else ""))
    if summary.get("run_id"):  # a submitted upload (`callaro import --submit`)
        print(f"run        {summary['run_id']}" + (f"  ({summary['run_status']})" if summary.get("run_status") else ""))
    if summary.get("note"):
        print(f"note       {summary['note']}")
    if summary.get("failure"):
        print(f"problem    {summary['failure'].get('message')}")
    print(
        f"rows read  {summary['rows_read']}   imported {summary['imported']}   rejected {summary['rejected']}   "
        f"duplicates {summary['duplicates']}   suppressed {summary['suppressed']}"
        + (f"   blocked {summary['blocked']}" if summary.get("blocked") else "")
    )
    if summary.get("problems_by_code"):
        print("problems   " + ", ".join(f"{k} {v}" for k, v in sorted(summary["problems_by_code"].items())))
    if summary.get("mapping", {}).get("unmapped"):
        print("unmapped   " + ", ".join(summary["mapping"]["unmapped"]))
    if summary.get("column_drift"):
        drift = summary["column_drift"]
        print(f"drift      added {drift['added']}  missing {drift['missing']}  renamed {drift['renamed']}")
    if summary.get("same_file_as"):
        print(f"note       the same file was already imported as {summary['same_file_as']}")
    for check in summary.get("checks", []):
        print(f"check      {'PASS' if check['passed'] else 'FAIL'}  {check['name']}: {check['detail']}")
    if summary.get("error_report"):
        print(f"errors     {summary['error_report']}")
    if summary.get("merge_conflicts_report"):
        print(f"conflicts  {summary.get('merge_conflicts', 0)} in {summary['merge_conflicts_report']}")
    if summary.get("duplicates_file"):
        print(f"split      {summary['duplicates_file']}")
    if summary.get("data_docs"):
        print(f"data docs  {summary['data_docs']}")
    audience = summary.get("audience")
    if audience:
        line = f"audience   {audience.get('status')}  callable {audience.get('callable', 0)}"
        print(line + (f"  ({audience['reason']})" if audience.get("reason") else ""))


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Columns padded to their widest cell, two spaces apart (`callaro uploads`)."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def print_segment_list(items: list[dict[str, Any]]) -> None:
    """`callaro segment list`: name, kind and the filter (or description) of every segment."""
    for item in items:
        detail = item.get("where") or item.get("description") or ""
        print(f"{item['name']:<32} {item['kind']:<7} {detail[:200]}")
    if not items:
        print("no segments yet: callaro segment create NAME --where ...")


def print_frame(frame: pl.DataFrame, *, row_limit: int = FRAME_ROW_LIMIT) -> None:
    """A query result as polars draws it: every column, up to `row_limit` rows, then a note if rows were cut."""
    shown = frame.head(row_limit)
    with pl.Config(
        tbl_rows=max(shown.height, 1), tbl_cols=-1, fmt_str_lengths=FRAME_TEXT_LENGTH, tbl_width_chars=10_000
    ):
        print(shown)
    if frame.height > row_limit:
        print(f"showing the first {row_limit} of {frame.height} rows: write them all with --out FILE")


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def shortened(line: str, limit: int) -> str:
    """A message cut at `limit` characters (never a whole echoed value or expression)."""
    return line if len(line) <= limit else line[:limit] + "…"

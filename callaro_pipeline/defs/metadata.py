"""Small renderers for Dagster metadata: markdown tables of already-masked frames, the upload at a glance."""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl

from callaro_pipeline.core.report import summary_markdown

TOP_ROWS = 10


def frame_markdown(df: pl.DataFrame) -> dg.MetadataValue:
    if df.is_empty():
        return dg.MetadataValue.md("_no rows_")
    header = "| " + " | ".join(df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in df.iter_rows()]
    return dg.MetadataValue.md("\n".join([header, rule, *body]))


def _md_table(header: tuple[str, str], rows: list[tuple[str, Any]]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | ---: |"]
    return "\n".join(lines + [f"| {_cell(key)} | {_cell(value)} |" for key, value in rows])


def _cell(value: object) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _counts(mapping: dict[str, Any] | None) -> list[tuple[str, Any]]:
    return sorted((mapping or {}).items(), key=lambda item: (-int(item[1] or 0), str(item[0])))


def in_progress(summary: dict[str, Any], status: str) -> dict[str, Any]:
    """A summary read mid-run: the upload is still `registered`, which `upload_summary` reports as failed."""
    return (
        {**summary, "status": status} if summary.get("status") == "failed" and not summary.get("failure") else summary
    )


def status_markdown(summary: dict[str, Any]) -> str:
    """A few lines that fit the UI's inline markdown (under 1,000 characters): status, the headline counts and
    each gate's result; a blocked upload names the gate and its reason in words."""
    status = str(summary.get("status") or "unknown")
    checks = summary.get("checks") or []
    failed = [c for c in checks if not c.get("passed")]
    lines = [
        f"**blocked** by gate `{failed[0].get('name')}`: {_short(failed[0].get('detail'))}"
        if status == "blocked" and failed
        else f"**{status}**"
    ]
    if summary.get("failure"):
        lines.append(f"problem: {_short(summary['failure'].get('message'))}")
    rows_read, imported, valid = (int(summary.get(key) or 0) for key in ("rows_read", "imported", "valid_rows"))
    rejected, duplicates = int(summary.get("rejected") or 0), int(summary.get("duplicates") or 0)
    if status in ("imported", "blocked", "failed"):
        counts = f"**{imported:,} imported**, {rejected:,} rejected, {duplicates:,} duplicates, "
        counts += f"{int(summary.get('suppressed') or 0):,} suppressed"
        if summary.get("blocked"):
            counts += f", {int(summary['blocked']):,} held back"
    else:  # mid-run: nothing is imported yet
        counts = f"**{valid:,} valid**, {rejected:,} rejected, {duplicates:,} duplicates"
    lines.append(f"{rows_read:,} rows read → {counts}")
    for check in checks:
        word = "passed" if check.get("passed") else "**FAILED**"
        lines.append(
            f"gate `{check.get('name')}` {word}" + ("" if check.get("passed") else f": {_short(check.get('detail'))}")
        )
    return "\n\n".join(lines)[:990]


def _short(text: object, limit: int = 240) -> str:
    value = _cell(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def upload_metadata(summary: dict[str, Any]) -> dict[str, Any]:
    """The upload at a glance for the Dagster UI, in display order: status line, gates, rejected rows by code,
    phone types / time zones, the files to open, and the full import summary. Built from the summary's counts,
    names and paths only, so no contact data (names, phones, e-mails) can reach the metadata."""
    metadata: dict[str, Any] = {"import_status": dg.MetadataValue.md(status_markdown(summary))}
    checks = summary.get("checks") or []
    if checks:
        lines = ["| gate | result | detail |", "| --- | --- | --- |"]
        lines += [
            f"| {_cell(c.get('name'))} | {'passed' if c.get('passed') else '**FAILED**'} | {_short(c.get('detail'), 160)} |"
            for c in checks
        ]
        metadata["gates"] = dg.MetadataValue.md("\n".join(lines))
    rejected = _counts(summary.get("problems_by_code"))
    metadata["rejected_by_code"] = dg.MetadataValue.md(
        _md_table(("code", "lines"), rejected) if rejected else "_no rejected rows_"
    )
    parts = []
    for key, label in (
        ("phone_types", "phone type"),
        ("timezone_sources", "time-zone source"),
        ("timezones", "time zone"),
    ):
        rows = _counts(summary.get(key))
        if len(rows) > TOP_ROWS:  # e.g. many time zones: the largest ones, then the rest together
            rows = [*rows[: TOP_ROWS - 1], ("(others)", sum(int(n) for _, n in rows[TOP_ROWS - 1 :]))]
        if rows:
            parts.append(_md_table((label, "contacts"), rows))
    if parts:
        metadata["phone_types_and_timezones"] = dg.MetadataValue.md("\n\n".join(parts))
    if summary.get("error_report"):
        metadata["error_report"] = dg.MetadataValue.path(str(summary["error_report"]))
    if summary.get("data_docs"):
        metadata["data_docs"] = dg.MetadataValue.path(str(summary["data_docs"]))
    metadata["import_summary"] = dg.MetadataValue.md(summary_markdown(summary))
    return metadata

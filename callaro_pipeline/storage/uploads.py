"""The upload register: one row per upload in `uploads`, its options, gate results and summary.

An upload's options are stored when it is registered, so a partition materialized later from the UI or by the
sensor runs with exactly the settings it was imported with.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import duckdb

from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.uploads import UploadOptions, UploadRecord, held_back


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def register_upload(con: duckdb.DuckDBPyConnection, landed: Any, options: UploadOptions) -> None:
    con.execute(
        """
        INSERT INTO uploads (upload_id, campaign, original_name, stored_path, sha256, size_bytes, received_at,
                             status, options, summary, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, 'registered', ?, '{}', ?)
        """,
        [
            landed.upload_id,
            landed.campaign,
            landed.original_name,
            str(landed.stored_path),
            landed.sha256,
            landed.size_bytes,
            landed.received_at.replace(tzinfo=None),
            json.dumps(asdict(options)),
            utcnow(),
        ],
    )


def load_upload(con: duckdb.DuckDBPyConnection, upload_id: str) -> UploadRecord:
    row = con.execute(
        "SELECT upload_id, campaign, original_name, stored_path, sha256, status, options, summary "
        "FROM uploads WHERE upload_id = ?",
        [upload_id],
    ).fetchone()
    if row is None:
        raise ConfigError(f"unknown upload {upload_id!r}")
    options = UploadOptions(**json.loads(row[6] or "{}"))
    upload, campaign, original_name, stored_path, sha256, status = row[:6]
    return UploadRecord(
        upload,
        campaign,
        original_name,
        stored_path,
        sha256,
        status,
        options=options,
        summary=json.loads(row[7] or "{}"),
    )


def find_upload_by_sha(con: duckdb.DuckDBPyConnection, campaign: str, sha256: str) -> str | None:
    """The earlier upload of the same bytes into the same campaign, if one was imported and not undone."""
    row = con.execute(
        "SELECT upload_id FROM uploads WHERE campaign = ? AND sha256 = ? AND status = 'imported' "
        "ORDER BY received_at DESC LIMIT 1",
        [campaign, sha256],
    ).fetchone()
    return row[0] if row else None


def inbox_upload_by_sha(con: duckdb.DuckDBPyConnection, campaign: str, sha256: str) -> str | None:
    """The upload the inbox sensor registered for these bytes in this campaign (whatever its status), if any."""
    row = con.execute(
        "SELECT upload_id FROM uploads WHERE campaign = ? AND sha256 = ? AND json_extract_string(summary, '$.via') = 'inbox' "
        "ORDER BY received_at LIMIT 1",
        [campaign, sha256],
    ).fetchone()
    return row[0] if row else None


def mark_upload_from_inbox(con: duckdb.DuckDBPyConnection, upload_id: str) -> None:
    """Note in the upload's summary that it came through the inbox (`"via": "inbox"`)."""
    con.execute(
        'UPDATE uploads SET summary = json_merge_patch(summary, \'{"via": "inbox"}\') WHERE upload_id = ?', [upload_id]
    )


def update_upload(con: duckdb.DuckDBPyConnection, upload_id: str, *, status: str | None = None, **fields: Any) -> None:
    """Merge `fields` into the summary JSON and copy the headline counts into their columns."""
    columns = ("rows_read", "imported", "rejected", "duplicates", "suppressed", "error_report")
    assignments = ["summary = json_merge_patch(coalesce(summary, '{}'), ?::JSON)", "updated_at = ?"]
    params: list[Any] = [json.dumps(fields, default=str), utcnow()]
    for column in columns:
        if column in fields:
            assignments.append(f"{column} = ?")
            params.append(fields[column])
    if status:
        assignments.append("status = ?")
        params.append(status)
    sql = "UPDATE uploads SET " + ", ".join(assignments) + " WHERE upload_id = ?"  # noqa: S608 - columns from code
    con.execute(sql, [*params, upload_id])


def record_check(
    con: duckdb.DuckDBPyConnection, upload_id: str, name: str, passed: bool, detail: str, metadata: dict
) -> None:
    con.execute("DELETE FROM upload_checks WHERE upload_id = ? AND name = ?", [upload_id, name])
    con.execute(
        "INSERT INTO upload_checks VALUES (?, ?, ?, ?, ?, ?)",
        [upload_id, name, passed, detail, json.dumps(metadata, default=str), utcnow()],
    )


def upload_summary(con: duckdb.DuckDBPyConnection, upload_id: str) -> dict[str, Any]:
    """The import summary: the contract's --json object (and more)."""
    record = load_upload(con, upload_id)
    checks = con.execute(
        "SELECT name, passed, detail FROM upload_checks WHERE upload_id = ? ORDER BY evaluated_at, name",
        [upload_id],
    ).fetchall()
    summary = dict(record.summary)
    summary.update(
        upload_id=record.upload_id,
        campaign=record.campaign,
        status=_public_status(record.status),
        checks=[{"name": n, "passed": bool(p), "detail": d} for n, p, d in checks],
    )
    for key in ("rows_read", "imported", "rejected", "duplicates", "suppressed"):
        summary.setdefault(key, 0)
    summary.setdefault("error_report", None)
    summary["blocked"] = held_back(summary)
    if record.status == "undone":
        summary["undone"] = True
    return summary


LISTED_COLUMNS = (
    "upload_id",
    "campaign",
    "original_name",
    "received_at",
    "status",
    "rows_read",
    "imported",
    "rejected",
    "duplicates",
    "suppressed",
)


def list_uploads(con: duckdb.DuckDBPyConnection, campaign: str | None = None) -> list[dict[str, Any]]:
    """Every upload (of one campaign), newest first: id, campaign, file name, time, status and counts, with
    `blocked` (the rows held back) as in the summary, so `rows_read = imported + ... + suppressed + blocked`."""
    rows = con.execute(
        f"SELECT {', '.join(LISTED_COLUMNS)} FROM uploads "  # noqa: S608 - columns from code
        "WHERE ? IS NULL OR campaign = ? ORDER BY received_at DESC, upload_id DESC",
        [campaign, campaign],
    ).fetchall()
    listed = []
    for row in rows:
        entry = dict(zip(LISTED_COLUMNS, row, strict=True))
        entry["undone"] = entry["status"] == "undone"
        entry["status"] = _public_status(entry["status"])
        entry["blocked"] = held_back(entry)
        listed.append(entry)
    return listed


def _public_status(status: str) -> str:
    return {"registered": "failed", "undone": "imported"}.get(status, status)

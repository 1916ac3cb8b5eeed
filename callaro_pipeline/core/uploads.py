"""An upload's options and its register record, and the rows a blocked upload held back: plain values, no engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UploadOptions:
    expected_count: int | None = None
    default_region: str | None = None
    duplicates: str | None = None
    mapping_path: str | None = None
    sheet: str | None = None
    manual: bool = False
    """a contact added by hand (`callaro contacts add`): not a vendor file, so it neither updates nor is
    compared with the campaign's remembered mapping and columns"""


@dataclass(frozen=True)
class UploadRecord:
    upload_id: str
    campaign: str
    original_name: str
    stored_path: str
    sha256: str
    status: str
    options: UploadOptions
    summary: dict[str, Any]


def held_back(summary: dict[str, Any]) -> int:
    """Rows read but neither imported, rejected, duplicates nor suppressed: held back because the upload was
    blocked by a gate (or failed) before its rows were released; 0 for an imported upload. So for every status
    `rows_read = imported + rejected + duplicates + suppressed + blocked`."""
    if summary.get("status") == "imported":
        return 0
    counted = sum(int(summary.get(key) or 0) for key in ("imported", "rejected", "duplicates", "suppressed"))
    return max(int(summary.get("rows_read") or 0) - counted, 0)

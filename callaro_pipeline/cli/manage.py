"""The logic behind `callaro contacts ...` (its commands: callaro_pipeline/cli/contacts.py; the SQL:
callaro_pipeline/storage/contact_edits.py).

`contacts add` is a one-row upload (same landing, validation, gates and DNC scrub as a file); `update` and
`remove` act on the contacts a `--where` selects (compiled by the one filter language), with values set by hand
checked like imported ones; every change is recorded in `contact_changes`.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml

from callaro_pipeline.core.config import load_custom_fields
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.schema import STANDARD_FIELDS


def where_conditions(where: str | None) -> list[Any]:
    """Filters of `contacts update|remove|export`: the one filter language of segments (callaro_pipeline.core.filters),
    whose fields include the contact book's own columns (names, phone, e-mail, contact_id, lineage)."""
    from callaro_pipeline.core.filter_parser import parse_where

    return parse_where(where, load_custom_fields()) if where else []


def selection_by_ids(ids: list[str]) -> list[tuple[str, str, Any]]:
    """The selection handed to the contact book: exactly the matched ids (the filter was compiled once, by the
    filter language); no match is a condition nobody meets (contact_id is never empty), so the contact book
    still checks the rest of the command (e.g. --set fields)."""
    return [("contact_id", "in", ids)] if ids else [("contact_id", "is_null", None)]


def checked_changes(changes: dict[str, str]) -> dict[str, str]:
    """Values set by hand pass the same rules as imported ones."""
    if changes.get("timezone"):
        import polars as pl

        from callaro_pipeline.core.typed_timezones import parse_timezone_text

        parsed = parse_timezone_text(pl.Series([changes["timezone"]]))
        if parsed.get_column("tz_error")[0] is not None or len(parsed.get_column("tz_candidates")[0]) != 1:
            raise ConfigError("timezone must be an IANA name, abbreviation or UTC offset")
        changes["timezone"] = parsed.get_column("tz_candidates")[0][0]
    if changes.get("consent"):
        import polars as pl

        from callaro_pipeline.core.field_checks import consent_answer

        consent = pl.select(consent_answer(pl.lit(changes["consent"].strip(), dtype=pl.Utf8))).item()
        if consent is None:
            raise ConfigError("consent must be yes, no or unknown (or a synonym such as opt-in / opt-out)")
        changes["consent"] = consent
    if changes.get("consent_date"):
        from datetime import UTC, datetime

        import polars as pl

        from callaro_pipeline.core.field_checks import consent_date_value

        parsed = pl.select(consent_date_value(pl.lit(changes["consent_date"], dtype=pl.Utf8))).item()
        if parsed is None or parsed > datetime.now(UTC).date():
            raise ConfigError("consent_date must be a real date, not in the future (YYYY-MM-DD or MM/DD/YYYY)")
        changes["consent_date"] = parsed.isoformat()
    if changes.get("email"):
        from email_validator import EmailNotValidError, validate_email

        try:
            changes["email"] = validate_email(changes["email"], check_deliverability=False).normalized
        except EmailNotValidError:
            raise ConfigError("email is not a valid address") from None
    return changes


def write_one_row_upload(folder: Path, fields: dict[str, str]) -> tuple[Path, Path]:
    """`contacts add` as a one-row upload: the CSV file and its mapping (standard fields by name, others as
    declared custom fields) under `folder`; an undeclared field is refused."""
    registry = load_custom_fields()
    columns: dict[str, str] = {}
    for name in fields:
        target = name if name in STANDARD_FIELDS else f"custom.{name.removeprefix('custom.')}"
        if target.startswith("custom.") and target.removeprefix("custom.") not in registry:
            raise ConfigError(f"unknown field {name!r}: not a standard field nor a declared custom field")
        columns[name] = target
    upload = folder / "manual_contact.csv"
    with upload.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(fields))
        writer.writerow(list(fields.values()))
    mapping = folder / "mapping.yaml"
    mapping.write_text(yaml.safe_dump({"columns": columns}), encoding="utf-8")
    return upload, mapping

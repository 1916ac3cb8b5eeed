"""The logic behind `callaro contacts ...` and `callaro segment ...` (their commands: callaro_pipeline/cli/).

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
from callaro_pipeline.storage.warehouse import Warehouse


def where_conditions(where: str | None) -> list[Any]:
    """Filters of `contacts update|remove|export`: the one filter language of segments (callaro_pipeline.core.filters),
    whose fields include the contact book's own columns (names, phone, e-mail, contact_id, lineage)."""
    from callaro_pipeline.core.filter_parser import parse_where

    return parse_where(where, load_custom_fields()) if where else []


def matching_contact_ids(con: Any, conditions: list[Any]) -> list[str]:
    """The contacts a `--where` selects, compiled by the filter language exactly as a segment's view is."""
    from callaro_pipeline.core.filters import bound_select_sql

    sql, params = bound_select_sql(conditions)
    rows = con.execute(f"SELECT contact_id FROM ({sql}) AS matched ORDER BY contact_id", params).fetchall()  # noqa: S608
    return [contact_id for (contact_id,) in rows]


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

        from callaro_pipeline.core.field_checks import _consent

        consent = pl.select(_consent(pl.lit(changes["consent"].strip(), dtype=pl.Utf8))).item()
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


def remove_from_campaign(
    con: Any, campaign: str, contact_ids: list[str], *, now: Any, changed_by: str, dry_run: bool
) -> Any:
    """`contacts remove --campaign C --where W`: take the matching contacts out of campaign C only. They stay in
    the contact book and in every other campaign; each unlinking is recorded in `contact_changes` (action
    `campaign_remove`, with the campaign). Only C's audience changes."""
    import json
    import uuid

    from callaro_pipeline.storage.contact_book import BookChange
    from callaro_pipeline.storage.warehouse import stage

    stage(con, "_matched_ids", _contact_id_frame(contact_ids))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _campaign_targets AS SELECT DISTINCT contact_id FROM campaign_contacts "
        "WHERE campaign = ? AND contact_id IN (SELECT contact_id FROM _matched_ids)",
        [campaign],
    )
    con.unregister("_matched_ids")
    (count,) = con.execute("SELECT count(*) FROM _campaign_targets").fetchone()
    if not dry_run and count:
        con.execute(
            "INSERT INTO contact_changes SELECT ?, ?, ?, 'campaign_remove', contact_id, ?, NULL, ?::JSON "
            "FROM _campaign_targets",
            [uuid.uuid4().hex, now, changed_by, campaign, json.dumps({"matched": count})],
        )
        con.execute(
            "DELETE FROM campaign_contacts WHERE campaign = ? "
            "AND contact_id IN (SELECT contact_id FROM _campaign_targets)",
            [campaign],
        )
    con.execute("DROP TABLE _campaign_targets")
    return BookChange(contacts=count, campaigns=[campaign] if count else [])


def _contact_id_frame(contact_ids: list[str]) -> Any:
    import polars as pl

    return pl.DataFrame({"contact_id": contact_ids}, schema={"contact_id": pl.Utf8})


def segment_views_ready(warehouse: Warehouse) -> None:
    """The staging and segment views exist (a fresh home, before or after its first import): made from the
    compiled dbt manifest, compiling it first if there is none yet."""
    from callaro_pipeline.storage import segments

    home = warehouse.paths.home
    with warehouse.connect() as con:
        if segments.views_missing(con):
            segments.create_missing_views(con, home=home)
        ready = not segments.views_missing(con)
    if not ready:
        from callaro_pipeline.defs.segments.assets import ensure_manifest, make_project

        ensure_manifest(make_project(home=home), home=home)
        with warehouse.connect() as con:
            segments.create_missing_views(con, home=home)
            ready = not segments.views_missing(con)
    if not ready:
        raise ConfigError("the segment views could not be made: run `dbt build` on dbt_contacts (see its README)")

"""The contact book: one row per person (key: E.164 phone plus extension), and which campaign each person was
uploaded to. Two people behind one switchboard number with different extensions are two contacts; a contact
without an extension keeps the id of its phone alone (`contact_id_sql`), so ids stay stable.

Every function works inside the caller's transaction on a DuckDB connection and runs set-based SQL.
Uploads are merged into the book by storage.contact_book_merge.

Undo takes the upload's rows out of `campaign_contacts` and marks the upload undone. Contacts left in no
campaign at all are removed from the book (so a segment cannot feed them into an audience); contacts still in
another campaign stay, with the values the undone upload gave them (the book keeps no value history).

Manual management (`callaro contacts update|remove|export --where ...`) takes conditions already parsed into
`(field, operator, value)` triples. Fields and operators come from the allowlists below, identifiers are only
ever taken from those lists, and every value is a bound parameter.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from callaro_pipeline.core import schema
from callaro_pipeline.core.contact_book import (
    Condition,
    as_utc_naive,
    condition_summary,
    condition_triple,
    value_params,
)
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.storage.uploads import load_upload

MANUAL_TIMEZONE_SOURCE = "manual"

FILTERABLE_FIELDS = schema.names(schema.fields(table="contacts", type="text"))
# Not the phone nor the id: a new phone is a new contact and goes through the import gates.
EDITABLE_FIELDS = schema.EDITABLE_FIELDS
CUSTOM_PREFIX = "custom."
_CUSTOM_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")
_OPERATORS = {
    "=": "{col} = ?",
    "!=": "{col} IS DISTINCT FROM ?",
    "in": "{col} IN (SELECT unnest(?::VARCHAR[]))",
    "not in": "{col} NOT IN (SELECT unnest(?::VARCHAR[]))",
    "contains": "contains(lower({col}), lower(?))",
    "starts_with": "starts_with(lower({col}), lower(?))",
    "is_null": "nullif({col}, '') IS NULL",
    "not_null": "nullif({col}, '') IS NOT NULL",
}
OPERATORS = tuple(_OPERATORS)


# --- identity and time -------------------------------------------------------------------------------------


def contact_id_sql(phone_column: str, extension_column: str | None = None) -> str:
    """SQL for the contact id of an E.164 column (and extension column): the one definition, used by every query
    that derives ids. The key is the phone alone when the extension is empty (the ids of contacts without one
    never change), else `<phone>;ext=<extension>` (RFC 3966's form)."""
    if extension_column is None:
        return f"'c_' || left(sha256({phone_column}), 16)"
    extension = f"nullif(trim({extension_column}), '')"
    key = f"CASE WHEN {extension} IS NULL THEN {phone_column} ELSE {phone_column} || ';ext=' || {extension} END"
    return f"'c_' || left(sha256({key}), 16)"


def record_change(
    con: duckdb.DuckDBPyConnection,
    *,
    action: str,
    changed_by: str,
    now: datetime,
    detail: dict[str, Any],
    campaign: str | None = None,
    upload_id: str | None = None,
) -> None:
    con.execute(
        "INSERT INTO contact_changes VALUES (?, ?, ?, ?, NULL, ?, ?, ?::JSON)",
        [uuid.uuid4().hex, as_utc_naive(now), changed_by, action, campaign, upload_id, json.dumps(detail)],
    )


def undo_upload(con: duckdb.DuckDBPyConnection, *, upload_id: str, now: datetime, changed_by: str) -> dict[str, int]:
    """Take an upload's contacts back out of its campaign; the upload and its report stay, marked undone.

    Idempotent: undoing an undone upload changes nothing. Returns `{unlinked, removed}` (campaign links taken
    out, contacts removed from the book because they are in no campaign any more). Rebuilding the campaign's
    audience is the caller's next step.
    """
    record = load_upload(con, upload_id)
    if record.status == "undone":
        return {"unlinked": 0, "removed": 0}
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _unlinked AS SELECT DISTINCT contact_id FROM campaign_contacts WHERE upload_id = ?",
        [upload_id],
    )
    (unlinked,) = con.execute("DELETE FROM campaign_contacts WHERE upload_id = ?", [upload_id]).fetchone()
    (removed,) = con.execute(
        """
        DELETE FROM contacts WHERE contact_id IN (SELECT contact_id FROM _unlinked)
          AND contact_id NOT IN (SELECT contact_id FROM campaign_contacts)
        """
    ).fetchone()
    con.execute("DROP TABLE _unlinked")
    con.execute(
        "UPDATE uploads SET status = 'undone', updated_at = ? WHERE upload_id = ?", [as_utc_naive(now), upload_id]
    )
    counts = {"unlinked": unlinked, "removed": removed}
    record_change(
        con,
        action="upload_undone",
        changed_by=changed_by,
        now=now,
        detail=counts,
        campaign=record.campaign,
        upload_id=upload_id,
    )
    return counts


# --- manual and bulk management ----------------------------------------------------------------------------


def _column_sql(field: str) -> tuple[str, list[Any]]:
    if field.startswith(CUSTOM_PREFIX):
        name = field[len(CUSTOM_PREFIX) :]
        if not _CUSTOM_NAME.match(name):
            raise ConfigError(f"invalid custom field name in condition: {field!r}")
        return "json_extract_string(custom_fields, ?)", [f"$.{name}"]
    if field not in FILTERABLE_FIELDS:
        raise ConfigError(
            f"cannot filter on {field!r}: use one of {', '.join(FILTERABLE_FIELDS)} or {CUSTOM_PREFIX}<name>"
        )
    return f'"{field}"', []


def where_sql(conditions: Sequence[Condition]) -> tuple[str, list[Any]]:
    """AND of the conditions as SQL over `contacts`, with its parameters; `TRUE` when there are none."""
    clauses: list[str] = []
    params: list[Any] = []
    for field, operator, value in map(condition_triple, conditions):
        if operator not in _OPERATORS:
            raise ConfigError(f"unknown operator {operator!r}: use one of {', '.join(OPERATORS)}")
        column, column_params = _column_sql(field)
        clauses.append(_OPERATORS[operator].format(col=column))
        params += [*column_params, *value_params(operator, value)]
    return (" AND ".join(f"({clause})" for clause in clauses) or "TRUE"), params


def campaign_contact_keys(con: duckdb.DuckDBPyConnection, campaign: str) -> pl.DataFrame:
    """The campaign's contacts by their keys (phone_e164, phone_extension, external_id) and the upload that
    brought each in: what a new upload of the campaign is matched against."""
    return con.execute(
        "SELECT c.phone_e164, c.phone_extension, c.external_id, cc.upload_id "
        "FROM campaign_contacts cc JOIN contacts c USING (contact_id) "
        "WHERE cc.campaign = ?",
        [campaign],
    ).pl()


def find_contacts(con: duckdb.DuckDBPyConnection, conditions: Sequence[Condition]) -> pl.DataFrame:
    where, params = where_sql(conditions)
    return con.execute(f"SELECT * FROM contacts WHERE {where} ORDER BY contact_id", params).pl()  # noqa: S608


@dataclass(frozen=True)
class BookChange:
    """What a manual change touched: the campaigns whose audiences should be rebuilt."""

    contacts: int
    campaigns: list[str]


def _select_targets(con: duckdb.DuckDBPyConnection, conditions: Sequence[Condition]) -> BookChange:
    """Fill `_targets` with the matching contact ids; refuses to touch the whole book by accident."""
    if not conditions:
        raise ConfigError("refusing to change every contact: give at least one --where condition")
    where, params = where_sql(conditions)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _targets AS SELECT contact_id FROM contacts WHERE {where}", params)  # noqa: S608
    (count,) = con.execute("SELECT count(*) FROM _targets").fetchone()
    campaigns = con.execute(
        "SELECT DISTINCT campaign FROM campaign_contacts WHERE contact_id IN (SELECT contact_id FROM _targets) "
        "ORDER BY campaign"
    ).fetchall()
    return BookChange(contacts=count, campaigns=[campaign for (campaign,) in campaigns])


def _record_per_contact(
    con: duckdb.DuckDBPyConnection, *, action: str, changed_by: str, now: datetime, detail: dict[str, Any]
) -> None:
    con.execute(
        "INSERT INTO contact_changes SELECT ?, ?, ?, ?, contact_id, NULL, NULL, ?::JSON FROM _targets",
        [uuid.uuid4().hex, as_utc_naive(now), changed_by, action, json.dumps(detail)],
    )


def _set_sql(changes: dict[str, Any]) -> tuple[str, list[Any]]:
    if not changes:
        raise ConfigError("nothing to set: give at least one --set field=value")
    assignments: list[str] = []
    params: list[Any] = []
    for field, raw in changes.items():
        if field not in EDITABLE_FIELDS:
            raise ConfigError(f"cannot set {field!r}: editable fields are {', '.join(EDITABLE_FIELDS)}")
        value = None if raw is None or str(raw).strip() == "" else str(raw).strip()
        assignments.append(f'"{field}" = ?')
        params.append(value)
        if field == "timezone":
            # A zone set by hand is decided: the calling window must use it alone.
            assignments += ["timezone_candidates = ?::VARCHAR[]", "timezone_source = ?"]
            params += [[value] if value else None, MANUAL_TIMEZONE_SOURCE]
    return ", ".join(assignments), params


def update_contacts(
    con: duckdb.DuckDBPyConnection,
    conditions: Sequence[Condition],
    changes: dict[str, Any],
    *,
    now: datetime,
    changed_by: str,
    dry_run: bool = False,
) -> BookChange:
    """Set editable fields on the matching contacts (an empty value clears the field).

    The caller validates time zone and e-mail values first; values here are bound, never spliced into SQL.
    """
    assignments, params = _set_sql(changes)
    change = _select_targets(con, conditions)
    if not dry_run and change.contacts:
        con.execute(
            f"UPDATE contacts SET {assignments}, updated_at = ? WHERE contact_id IN (SELECT contact_id FROM _targets)",  # noqa: S608
            [*params, as_utc_naive(now)],
        )
        detail = {"fields": sorted(changes), "conditions": condition_summary(conditions), "matched": change.contacts}
        _record_per_contact(con, action="update", changed_by=changed_by, now=now, detail=detail)
    con.execute("DROP TABLE _targets")
    return change


def remove_contacts(
    con: duckdb.DuckDBPyConnection,
    conditions: Sequence[Condition],
    *,
    now: datetime,
    changed_by: str,
    dry_run: bool = False,
) -> BookChange:
    """Remove the matching contacts from the book and every campaign.

    Past audience builds keep their frozen copies; a removed phone that arrives in a later upload comes back
    (to stop calling a number for good, add it to the DNC list).
    """
    change = _select_targets(con, conditions)
    if not dry_run and change.contacts:
        detail = {"conditions": condition_summary(conditions), "matched": change.contacts}
        _record_per_contact(con, action="remove", changed_by=changed_by, now=now, detail=detail)
        con.execute("DELETE FROM campaign_contacts WHERE contact_id IN (SELECT contact_id FROM _targets)")
        con.execute("DELETE FROM contacts WHERE contact_id IN (SELECT contact_id FROM _targets)")
    con.execute("DROP TABLE _targets")
    return change

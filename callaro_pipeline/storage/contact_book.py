"""The contact book: one row per person (key: E.164 phone plus extension), and which campaign each person was
uploaded to. Two people behind one switchboard number with different extensions are two contacts; a contact
without an extension keeps the id of its phone alone (`contact_id_sql`), so ids stay stable.

Every function works inside the caller's transaction on a DuckDB connection and runs set-based SQL.

Merge rule: an upload's non-empty values overwrite the book's ("latest non-empty value wins"); the time zone
and the consent evidence each move as a group so a zone never pairs with another upload's candidates, nor a
consent with another upload's date and source; custom fields are merged key by key. `first_upload_id` and
`source_row` keep where the contact first came from. A contact's other numbers (`other_phones_e164`, from a
mapping with several phone columns; listed ones are taken off before the merge) are kept as a union, the
upload's first.

Consent is the exception to "latest wins": an upload's "unknown" (an empty cell) never replaces what the book
knows, and a "no" in the book (an opt-out) is replaced only by a "yes" whose consent date is later than the
"no"'s. A "no" in any of the upload's validated rows revokes, even when the row itself is suppressed or was
kept only to revoke (duplicates.apply_duplicate_policy): `_apply_revocations`.

A contact is linked to a campaign once: the link insert skips contacts the campaign already has, so two
imports into one campaign running at the same time cannot link one contact twice (the writes are serialized by
the warehouse lock; the check and the insert are one statement inside the writer's transaction).

Undo takes the upload's rows out of `campaign_contacts` and marks the upload undone. Contacts left in no
campaign at all are removed from the book (so a segment cannot feed them into an audience); contacts still in
another campaign stay, with the values the undone upload gave them (the book keeps no value history).

Manual management (`callaro contacts update|remove|export --where ...`) takes conditions already parsed into
`(field, operator, value)` triples. Fields and operators come from the allowlists below, identifiers are only
ever taken from those lists, and every value is a bound parameter.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl

from callaro_pipeline.core import schema
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.storage.uploads import load_upload
from callaro_pipeline.storage.warehouse import stage

PIPELINE_USER = "pipeline"
MANUAL_TIMEZONE_SOURCE = "manual"

# From the field registry. Values that only make sense together (the duplicate merge units but the phone's,
# whose lead is the key): the group is taken from the upload that has its key field.
_FIELD_GROUPS = {lead: members for lead, members in schema.merge_units().items() if lead not in schema.CONTACT_KEY}
_GROUPED = {name for members in _FIELD_GROUPS.values() for name in members}
# Values that each stand on their own: the latest non-empty one wins.
_SINGLE_FIELDS = tuple(
    f.name
    for f in schema.fields(table="validated_contacts", type="text")
    if f.in_book and f.name not in _GROUPED and f.name != schema.CONTACT_KEY[0]  # the phone: the key itself
)
_INCOMING_SCHEMA: dict[str, pl.DataType] = {
    f.name: schema.polars_dtype(f) for f in schema.fields(table="validated_contacts")
}
_TEXT_FIELDS = schema.names(schema.fields(table="validated_contacts", type="text"))

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
_VALUELESS_OPERATORS = ("is_null", "not_null")
_LIST_OPERATORS = ("in", "not in")

# A `(field, operator, value)` triple, or an object with those attributes (segments.parse_where's Condition).
Condition = Any


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


def contact_id_for(phone_e164: str, extension: str | None = None) -> str:
    """The same id computed in Python, for callers without a connection (e.g. call results tying back)."""
    ext = (extension or "").strip()
    key = f"{phone_e164};ext={ext}" if ext else phone_e164
    return "c_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def as_utc_naive(moment: datetime) -> datetime:
    """Warehouse TIMESTAMP columns hold naive UTC; an aware value would be shifted by the session time zone."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _record_change(
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


# --- uploads into the book ---------------------------------------------------------------------------------


def _aligned(contacts: pl.DataFrame) -> pl.DataFrame:
    """The upload's columns the book takes, in a fixed order and type; absent optional columns are null."""
    return contacts.select(
        [
            pl.col(name).cast(dtype) if name in contacts.columns else pl.lit(None, dtype).alias(name)
            for name, dtype in _INCOMING_SCHEMA.items()
        ]
    )


_NON_EMPTY_CUSTOM_FIELDS = (
    "to_json(map_from_entries(list_filter("
    """map_entries(json_transform(custom_fields::JSON, '"MAP(VARCHAR, JSON)"')), """
    """e -> e.value IS NOT NULL AND e.value != '""')))"""
)


# What DuckDB's trim() removes: the Unicode space separators (category Zs), not tabs or line breaks.
_SPACE_SEPARATORS = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"


def _incoming_rows(contacts: pl.DataFrame) -> pl.DataFrame:
    """One row per phone and extension (its first row in the upload), text trimmed as DuckDB's trim() does,
    empty -> null."""
    rows = _aligned(contacts)
    # Column by column, and a column is replaced only when trimming changes it: cleaning every column at once
    # held a second copy of a million rows of text at the memory peak. Each step below likewise.
    for name in _TEXT_FIELDS:
        text = rows.get_column(name)
        trimmed = text.str.strip_chars(_SPACE_SEPARATORS)
        cleaned = trimmed.set(trimmed == "", None)
        if not cleaned.equals(text, check_names=False, null_equal=True):
            rows = rows.with_columns(cleaned.alias(name))
    rows = rows.filter(pl.col("phone_e164").is_not_null())
    if not rows.get_column("row_number").is_sorted():
        rows = rows.sort("row_number", maintain_order=True)
    key = ["phone_e164", "phone_extension"]
    if rows.select(key).n_unique() < rows.height:
        rows = rows.unique(subset=key, keep="first", maintain_order=True)
    return rows


def _stage_incoming(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> None:
    """`_incoming` from `_incoming_rows`: one row per phone and extension (its first row), with its contact_id,
    empty text as NULL, custom fields without empty values (so a blank cell never erases what the book knows).

    A view over the registered frame rather than a temporary table: copying a million rows of text inside
    DuckDB (and trimming them there) cost more than the merge itself. The contact ids are hashed once, before
    the frame is registered: the merge reads the view three times. `_drop_incoming` removes it.
    """
    phones = stage(con, "_upload_phones", rows.select("phone_e164", "phone_extension"))
    try:
        # a projection of one registered frame: DuckDB returns its rows in order
        contact_id = contact_id_sql("phone_e164", "phone_extension")
        ids = con.execute(f"SELECT {contact_id} AS contact_id FROM {phones}").pl()  # noqa: S608
    finally:
        con.unregister(phones)
    # in one piece, as the rows are: columns cut in different pieces are copied whole to be handed to DuckDB
    staged = stage(con, "_upload_rows", rows.rechunk().insert_column(0, ids.get_column("contact_id").rechunk()))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW _incoming AS
        SELECT * REPLACE (coalesce({_NON_EMPTY_CUSTOM_FIELDS}, '{{}}') AS custom_fields)
        FROM {staged}
        """  # noqa: S608 - identifiers from code
    )


def _drop_incoming(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP VIEW IF EXISTS _incoming")
    con.unregister("_upload_rows")


def _merge_assignments() -> str:
    single = [f"{name} = coalesce(i.{name}, c.{name})" for name in _SINGLE_FIELDS]
    takes = {
        "timezone": "i.timezone IS NOT NULL",
        # an incoming consent counts when known; it never replaces a "no" unless it is a later-dated consent
        "consent": "coalesce(i.consent, 'unknown') <> 'unknown' AND (c.consent IS DISTINCT FROM 'no' "
        "OR i.consent = 'no' OR TRY_CAST(i.consent_date AS DATE) > TRY_CAST(c.consent_date AS DATE))",
    }
    empty = {"timezone": "c.timezone IS NULL", "consent": "coalesce(c.consent, 'unknown') = 'unknown'"}
    grouped = [
        f"{name} = CASE WHEN {takes[key]} THEN i.{name} "
        f"WHEN {empty[key]} THEN coalesce(i.{name}, c.{name}) ELSE c.{name} END"
        for key, names in _FIELD_GROUPS.items()
        for name in names
    ]
    custom = "custom_fields = json_merge_patch(coalesce(c.custom_fields, '{}'), i.custom_fields)"
    # the upload's other numbers first, then the book's it lacks (never the phone itself)
    others = (
        "other_phones_e164 = CASE WHEN i.other_phones_e164 IS NULL THEN c.other_phones_e164 ELSE "
        "nullif(list_filter(list_concat(i.other_phones_e164, list_filter(coalesce(c.other_phones_e164, []), "
        "e -> NOT list_contains(i.other_phones_e164, e))), e -> e <> c.phone_e164), []) END"
    )
    return ",\n".join([*single, *grouped, custom, others, "last_upload_id = ?", "updated_at = ?"])


def merge_upload_into_book(
    con: duckdb.DuckDBPyConnection,
    *,
    upload_id: str,
    campaign: str,
    contacts: pl.DataFrame,
    now: datetime,
    changed_by: str = PIPELINE_USER,
) -> dict[str, int]:
    """Upsert an upload's released rows into `contacts` and link them to the campaign.

    Idempotent: running the same upload again replaces its `campaign_contacts` rows and rewrites the same
    values. Returns `{inserted, updated, linked}` (new contacts, existing contacts matched, links written).
    """
    stamp = as_utc_naive(now)
    rows = _incoming_rows(contacts)
    del contacts  # a caller that hands its frame over does not hold a million rows twice (peak memory)
    _stage_incoming(con, rows)
    try:
        counts = _merge_incoming(con, upload_id=upload_id, campaign=campaign, stamp=stamp)
    finally:
        _drop_incoming(con)
    _record_change(
        con,
        action="upload_merged",
        changed_by=changed_by,
        now=now,
        detail=counts,
        campaign=campaign,
        upload_id=upload_id,
    )
    return counts


def _merge_incoming(con: duckdb.DuckDBPyConnection, *, upload_id: str, campaign: str, stamp: datetime) -> dict:
    # The incoming contacts already in the book, found by probing the book with the upload's ids (the hash
    # table holds the upload, the book is only scanned): the update then joins those rows only, and the
    # insert takes the others, without a second pass over the book.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _matched AS
        SELECT c.contact_id FROM contacts c SEMI JOIN (SELECT contact_id FROM _incoming) i USING (contact_id)
        """
    )
    try:
        updated = 0
        if con.execute("SELECT count(*) FROM _matched").fetchone()[0]:
            (updated,) = con.execute(
                f"""
                UPDATE contacts AS c SET {_merge_assignments()}
                FROM (SELECT * FROM _incoming SEMI JOIN _matched USING (contact_id)) AS i
                WHERE c.contact_id = i.contact_id
                """,  # noqa: S608 - identifiers from code
                [upload_id, stamp],
            ).fetchone()
        (inserted,) = con.execute(
            """
            INSERT INTO contacts BY NAME
            SELECT * EXCLUDE (row_number), row_number AS source_row, ? AS first_upload_id, ? AS last_upload_id,
                   ? AS created_at, ? AS updated_at
            FROM _incoming ANTI JOIN _matched USING (contact_id)
            """,
            [upload_id, upload_id, stamp, stamp],
        ).fetchone()
    finally:
        con.execute("DROP TABLE _matched")
    con.execute("DELETE FROM campaign_contacts WHERE upload_id = ?", [upload_id])
    (linked,) = con.execute(
        """
        INSERT INTO campaign_contacts BY NAME
        SELECT ? AS campaign, i.contact_id, ? AS upload_id, i.row_number, ? AS added_at FROM _incoming AS i
        ANTI JOIN (SELECT contact_id FROM campaign_contacts WHERE campaign = ?) AS cc USING (contact_id)
        """,
        [campaign, upload_id, stamp, campaign],
    ).fetchone()
    revoked = _apply_revocations(con, upload_id=upload_id, stamp=stamp)
    counts = {"inserted": inserted, "updated": updated, "linked": linked}
    return counts | ({"consent_revoked": revoked} if revoked else {})


def _apply_revocations(con: duckdb.DuckDBPyConnection, *, upload_id: str, stamp: datetime) -> int:
    """Every contact of the book whose phone has a consent "no" in the upload's validated rows (released or
    not) takes that "no" with its date and source (the upload's latest such row per phone and extension). A "no"
    given with an extension revokes that extension's contact; one without revokes every contact of the number
    (as a DNC listing of the main number covers every extension)."""
    (revoked,) = con.execute(
        """
        UPDATE contacts AS c
        SET consent = 'no', consent_date = r.consent_date, consent_source = r.consent_source,
            last_upload_id = $1, updated_at = $2
        FROM (
            -- one "no" per contact: its own extension's latest, else the number's latest
            SELECT b.contact_id, v.consent_date, v.consent_source
            FROM (
                SELECT phone_e164, nullif(trim(phone_extension), '') AS phone_extension, row_number, consent_date,
                       consent_source
                FROM validated_contacts WHERE upload_id = $1 AND consent = 'no'
            ) AS v
            JOIN contacts AS b ON b.phone_e164 = v.phone_e164
             AND (v.phone_extension IS NULL OR b.phone_extension IS NOT DISTINCT FROM v.phone_extension)
            QUALIFY row_number() OVER (
                PARTITION BY b.contact_id ORDER BY v.phone_extension IS NULL, v.row_number DESC) = 1
        ) AS r
        WHERE c.contact_id = r.contact_id
          AND (c.consent IS DISTINCT FROM 'no' OR c.consent_date IS DISTINCT FROM r.consent_date
               OR c.consent_source IS DISTINCT FROM r.consent_source)
        """,
        [upload_id, stamp],
    ).fetchone()
    return revoked


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
    _record_change(
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


def _value_params(operator: str, value: Any) -> list[Any]:
    if operator in _VALUELESS_OPERATORS:
        return []
    if operator in _LIST_OPERATORS:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, Sequence) or not items:
            raise ConfigError(f"{operator!r} needs a non-empty list of values")
        return [[str(item).strip() for item in items]]
    if value is None:
        raise ConfigError(f"{operator!r} needs a value (use is_null / not_null for empty fields)")
    return [str(value)]


def _triple(condition: Condition) -> tuple[str, str, Any]:
    if hasattr(condition, "operator"):
        return condition.field, condition.operator, condition.value
    field, operator, value = condition
    return field, operator, value


def where_sql(conditions: Sequence[Condition]) -> tuple[str, list[Any]]:
    """AND of the conditions as SQL over `contacts`, with its parameters; `TRUE` when there are none."""
    clauses: list[str] = []
    params: list[Any] = []
    for field, operator, value in map(_triple, conditions):
        if operator not in _OPERATORS:
            raise ConfigError(f"unknown operator {operator!r}: use one of {', '.join(OPERATORS)}")
        column, column_params = _column_sql(field)
        clauses.append(_OPERATORS[operator].format(col=column))
        params += [*column_params, *_value_params(operator, value)]
    return (" AND ".join(f"({clause})" for clause in clauses) or "TRUE"), params


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


def _condition_summary(conditions: Sequence[Condition]) -> list[list[str]]:
    """Field names and operators only: values may be personal data."""
    return [[field, operator] for field, operator, _ in map(_triple, conditions)]


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
        detail = {"fields": sorted(changes), "conditions": _condition_summary(conditions), "matched": change.contacts}
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
        detail = {"conditions": _condition_summary(conditions), "matched": change.contacts}
        _record_per_contact(con, action="remove", changed_by=changed_by, now=now, detail=detail)
        con.execute("DELETE FROM campaign_contacts WHERE contact_id IN (SELECT contact_id FROM _targets)")
        con.execute("DELETE FROM contacts WHERE contact_id IN (SELECT contact_id FROM _targets)")
    con.execute("DROP TABLE _targets")
    return change

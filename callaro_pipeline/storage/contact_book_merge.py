"""Uploads into the contact book: an upload's released rows (validated, not suppressed) merged into `contacts`
and linked to its campaign, inside the caller's transaction, set-based SQL.

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
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from callaro_pipeline.core.config import Campaign
from callaro_pipeline.core.contact_book import FIELD_GROUPS, SINGLE_FIELDS, as_utc_naive, incoming_rows
from callaro_pipeline.core.uploads import UploadRecord
from callaro_pipeline.storage.contact_book import contact_id_sql, record_change
from callaro_pipeline.storage.suppression import drop_listed_other_phones
from callaro_pipeline.storage.warehouse import single_row, stage

PIPELINE_USER = "pipeline"

RELEASED_SQL = """
SELECT v.* EXCLUDE (upload_id)
FROM validated_contacts v
ANTI JOIN (SELECT row_number FROM suppressed_contacts WHERE upload_id = ?) s USING (row_number)
WHERE v.upload_id = ?
ORDER BY v.row_number
"""

_NON_EMPTY_CUSTOM_FIELDS = (
    "to_json(map_from_entries(list_filter("
    """map_entries(json_transform(custom_fields::JSON, '"MAP(VARCHAR, JSON)"')), """
    """e -> e.value IS NOT NULL AND e.value != '""')))"""
)


def _stage_incoming(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> None:
    """`_incoming` from `incoming_rows`: one row per phone and extension (its first row), with its contact_id,
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
    single = [f"{name} = coalesce(i.{name}, c.{name})" for name in SINGLE_FIELDS]
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
        for key, names in FIELD_GROUPS.items()
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
    rows = incoming_rows(contacts)
    del contacts  # a caller that hands its frame over does not hold a million rows twice (peak memory)
    _stage_incoming(con, rows)
    try:
        counts = _merge_incoming(con, upload_id=upload_id, campaign=campaign, stamp=stamp)
    finally:
        _drop_incoming(con)
    record_change(
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
        if single_row(con, "SELECT count(*) FROM _matched")[0]:
            (updated,) = single_row(
                con,
                f"""
                UPDATE contacts AS c SET {_merge_assignments()}
                FROM (SELECT * FROM _incoming SEMI JOIN _matched USING (contact_id)) AS i
                WHERE c.contact_id = i.contact_id
                """,  # noqa: S608 - identifiers from code
                [upload_id, stamp],
            )
        (inserted,) = single_row(
            con,
            """
            INSERT INTO contacts BY NAME
            SELECT * EXCLUDE (row_number), row_number AS source_row, ? AS first_upload_id, ? AS last_upload_id,
                   ? AS created_at, ? AS updated_at
            FROM _incoming ANTI JOIN _matched USING (contact_id)
            """,
            [upload_id, upload_id, stamp, stamp],
        )
    finally:
        con.execute("DROP TABLE _matched")
    con.execute("DELETE FROM campaign_contacts WHERE upload_id = ?", [upload_id])
    (linked,) = single_row(
        con,
        """
        INSERT INTO campaign_contacts BY NAME
        SELECT ? AS campaign, i.contact_id, ? AS upload_id, i.row_number, ? AS added_at FROM _incoming AS i
        ANTI JOIN (SELECT contact_id FROM campaign_contacts WHERE campaign = ?) AS cc USING (contact_id)
        """,
        [campaign, upload_id, stamp, campaign],
    )
    revoked = _apply_revocations(con, upload_id=upload_id, stamp=stamp)
    counts = {"inserted": inserted, "updated": updated, "linked": linked}
    return counts | ({"consent_revoked": revoked} if revoked else {})


def _apply_revocations(con: duckdb.DuckDBPyConnection, *, upload_id: str, stamp: datetime) -> int:
    """Every contact of the book whose phone has a consent "no" in the upload's validated rows (released or
    not) takes that "no" with its date and source (the upload's latest such row per phone and extension). A "no"
    given with an extension revokes that extension's contact; one without revokes every contact of the number
    (as a DNC listing of the main number covers every extension)."""
    (revoked,) = single_row(
        con,
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
    )
    return revoked


# --- releasing an upload -----------------------------------------------------------------------------------


def release_blocker(con: duckdb.DuckDBPyConnection, upload_id: str, required_gates: tuple[str, ...]) -> str | None:
    """Why the upload may not be released, in words, or None. Blocking checks only block inside one run: a run
    that merges an upload alone must not release one whose gates failed or never ran."""
    checks = con.execute(
        "SELECT name, passed, detail FROM upload_checks WHERE upload_id = ? ORDER BY name", [upload_id]
    ).fetchall()
    passed = {name for name, ok, _ in checks if ok}
    failed = [(name, detail) for name, ok, detail in checks if not ok]
    missing = [gate for gate in required_gates if gate not in passed]
    if not failed and not missing:
        return None
    return (
        "; ".join(f"blocked by {name}: {detail}" for name, detail in failed)
        or f"blocked: gates not evaluated: {', '.join(missing)} (launch the import_upload job)"
    )


def merge_released_rows(con: duckdb.DuckDBPyConnection, upload: UploadRecord, *, now: datetime) -> tuple[int, dict]:
    """Merge the upload's released rows (validated, not suppressed) into the book; returns (rows released,
    `merge_upload_into_book`'s counts)."""
    upload_id = upload.upload_id
    imported = con.execute(f"SELECT count(*) FROM ({RELEASED_SQL})", [upload_id, upload_id]).fetchall()[0][0]  # noqa: S608
    # the released rows are handed over, not kept here: the merge frees them once it has its own copy
    counts = merge_upload_into_book(
        con,
        upload_id=upload_id,
        campaign=upload.campaign,
        # other numbers listed now on the campaign's lists never reach the book (the contact keeps its phone)
        contacts=drop_listed_other_phones(
            con, con.execute(RELEASED_SQL, [upload_id, upload_id]).pl(), Campaign(name=upload.campaign).dnc_sources
        ),
        now=now,
    )
    return imported, counts


def remember_campaign_state(con: duckdb.DuckDBPyConnection, upload: UploadRecord, *, now: datetime) -> None:
    """The campaign's latest upload, mapping and columns (`campaign_state`), for its next import."""
    con.execute(
        """
        MERGE INTO campaign_state AS s
        USING (
            SELECT ? AS campaign, ? AS last_upload_id, ?::JSON AS last_mapping,
                   (SELECT to_json(list(name ORDER BY position)) FROM raw_columns WHERE upload_id = ?)
                       AS last_columns,
                   ?::TIMESTAMP AS updated_at
        ) AS n ON s.campaign = n.campaign
        WHEN MATCHED THEN UPDATE SET last_upload_id = n.last_upload_id, last_mapping = n.last_mapping,
            last_columns = n.last_columns, updated_at = n.updated_at
        WHEN NOT MATCHED THEN INSERT BY NAME
        """,
        [upload.campaign, upload.upload_id, upload.summary.get("mapping_json"), upload.upload_id, now],
    )

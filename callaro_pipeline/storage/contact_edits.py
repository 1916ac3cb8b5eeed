"""The SQL behind `callaro contacts update | remove`: select the contacts a `--where` matches, take them out of
one campaign (every unlinking recorded in `contact_changes`)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import duckdb
import polars as pl

from callaro_pipeline.core.filters import Condition, bound_select_sql
from callaro_pipeline.storage.contact_book import BookChange
from callaro_pipeline.storage.warehouse import stage


def matching_contact_ids(con: duckdb.DuckDBPyConnection, conditions: list[Condition]) -> list[str]:
    """The contacts a `--where` selects, compiled by the filter language exactly as a segment's view is."""
    sql, params = bound_select_sql(conditions)
    rows = con.execute(f"SELECT contact_id FROM ({sql}) AS matched ORDER BY contact_id", params).fetchall()  # noqa: S608
    return [contact_id for (contact_id,) in rows]


def remove_from_campaign(
    con: duckdb.DuckDBPyConnection,
    campaign: str,
    contact_ids: list[str],
    *,
    now: datetime,
    changed_by: str,
    dry_run: bool,
) -> BookChange:
    """`contacts remove --campaign C --where W`: take the matching contacts out of campaign C only. They stay in
    the contact book and in every other campaign; each unlinking is recorded in `contact_changes` (action
    `campaign_remove`, with the campaign). Only C's audience changes."""
    stage(con, "_matched_ids", pl.DataFrame({"contact_id": contact_ids}, schema={"contact_id": pl.Utf8}))
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

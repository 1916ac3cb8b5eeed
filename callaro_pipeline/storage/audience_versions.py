"""What an audience build stores: the members' versions (a contact's row changes only when its outcome or values
do), the calling windows of the campaign's window keys, and the campaign-wide counts of the build."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl

from callaro_pipeline.core import windows
from callaro_pipeline.core.audiences import COMPARED_COLUMNS, counts_largest_first, cut_intervals
from callaro_pipeline.core.config import Campaign
from callaro_pipeline.storage.warehouse import single_row, stage


def latest_build(con: duckdb.DuckDBPyConnection, campaign: str) -> tuple[int, datetime | None, dict[str, Any]]:
    """(number of builds so far, when the latest was built, its detail)."""
    row = con.execute(
        "SELECT count(*) OVER (), built_at, detail FROM audience_builds WHERE campaign = ? "
        "ORDER BY build_id DESC LIMIT 1",
        [campaign],
    ).fetchone()
    return (row[0], row[1], json.loads(row[2] or "{}")) if row else (0, None, {})


def store_versions(
    con: duckdb.DuckDBPyConnection, campaign: str, number: int, outcomes: pl.DataFrame, *, everyone: bool
) -> int:
    """Close the current versions that differ from `outcomes` (or, with `everyone`, that `outcomes` lacks: the
    contacts no longer candidates) and open versions for the rest; returns the number of versions opened.

    Every join builds its hash table on the current versions of the contacts evaluated, or on their ids: after
    an import that is what the upload touched, not the upload's million new contacts with all their values.
    """
    staged = stage(con, "_outcomes", outcomes)
    compared = ", ".join(COMPARED_COLUMNS)
    same = " AND ".join(f"c.{name} IS NOT DISTINCT FROM o.{name}" for name in COMPARED_COLUMNS)
    scope = "" if everyone else f"AND contact_id IN (SELECT contact_id FROM {staged})"  # noqa: S608
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _current AS
            SELECT contact_id, {compared} FROM audience_member_versions
            WHERE campaign = ? AND to_build IS NULL {scope}
            """,  # noqa: S608 - identifiers from code
            [campaign],
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _unchanged AS
            SELECT o.contact_id FROM {staged} AS o SEMI JOIN _current AS c ON c.contact_id = o.contact_id AND {same}
            """  # noqa: S608 - identifiers from code
        )
        con.execute(
            """
            UPDATE audience_member_versions SET to_build = ?
            WHERE campaign = ? AND to_build IS NULL AND contact_id IN (SELECT contact_id FROM _current)
              AND contact_id NOT IN (SELECT contact_id FROM _unchanged)
            """,
            [number, campaign],
        )
        (opened,) = single_row(
            con,
            f"""
            INSERT INTO audience_member_versions BY NAME
            SELECT ? AS campaign, ? AS from_build, NULL AS to_build, o.*
            FROM {staged} AS o WHERE o.contact_id NOT IN (SELECT contact_id FROM _unchanged)
            """,  # noqa: S608 - identifiers from code
            [campaign, number],
        )
    finally:
        con.execute("DROP TABLE IF EXISTS _current")
        con.execute("DROP TABLE IF EXISTS _unchanged")
        con.unregister(staged)
    return opened


def store_windows(
    con: duckdb.DuckDBPyConnection,
    campaign: Campaign,
    build_id: str,
    outcomes: pl.DataFrame,
    now: datetime,
    *,
    not_after: datetime | None = None,
) -> None:
    """The build's calling windows for every window key its campaign's members have had (few per campaign),
    ended at `not_after` (the national snapshot's 31-day limit) when given."""
    new_keys = outcomes.select(pl.col("window_key").drop_nulls().unique())
    staged = stage(con, "_window_keys", new_keys)
    con.execute(
        f"""
        INSERT INTO audience_window_keys
        SELECT ?, window_key FROM {staged}
        WHERE window_key NOT IN (SELECT window_key FROM audience_window_keys WHERE campaign = ?)
        """,  # noqa: S608 - identifiers from code
        [campaign.name, campaign.name],
    )
    con.unregister(staged)
    keys = [
        key
        for (key,) in con.execute(
            "SELECT window_key FROM audience_window_keys WHERE campaign = ? ORDER BY window_key", [campaign.name]
        ).fetchall()
    ]
    aware_now = now if now.tzinfo else now.replace(tzinfo=UTC)
    intervals = cut_intervals(windows.call_windows_for_keys(keys, campaign.window, aware_now), not_after)
    staged = stage(con, "_build_windows", intervals.with_columns(pl.lit(build_id).alias("build_id")))
    con.execute(f"INSERT INTO audience_build_windows BY NAME SELECT * FROM {staged}")  # noqa: S608
    con.unregister(staged)


def build_counts(con: duckdb.DuckDBPyConnection, campaign: str, build_id: str) -> dict[str, Any]:
    """The campaign-wide counts of the build, from the current versions."""
    current = "FROM audience_member_versions WHERE campaign = ? AND to_build IS NULL"
    candidates, suppressed, missing, members, not_callable = single_row(
        con,
        f"""
        SELECT count(*), count(*) FILTER (WHERE outcome = 'suppressed'),
               count(*) FILTER (WHERE outcome = 'missing_required'),
               count(*) FILTER (WHERE outcome = 'member' AND open),
               count(*) FILTER (WHERE outcome = 'member' AND NOT open)
        FROM (
            SELECT outcome, window_key IN (SELECT window_key FROM audience_build_windows WHERE build_id = ?) AS open
            {current}
        )
        """,  # noqa: S608 - constant text
        [build_id, campaign],
    )

    def by_reason(outcome: str) -> dict[str, int]:
        return counts_largest_first(
            con.execute(
                f"SELECT reason, count(*) FROM (SELECT unnest(reasons) AS reason {current} AND outcome = ?) "  # noqa: S608
                "GROUP BY reason",
                [campaign, outcome],
            ).fetchall()
        )

    return {
        "candidates": candidates,
        "members": members,
        "suppressed": suppressed,
        "suppressed_by_reason": by_reason("suppressed"),
        "missing_required": missing,
        "missing_by_variable": by_reason("missing_required"),
        "not_callable": not_callable,
    }

"""Campaign audiences: who may be called, with the agent variables each call needs and why it is callable.

Who is a candidate:
- a campaign that names segments gets the contacts of any of those segments (a segment may draw on every
  campaign's uploads: that is how a segment feeds an audience); its `uploads` setting is not used then;
- otherwise the contacts uploaded to the campaign (all its uploads, or the listed upload ids).
Either way only contacts with a link from a live upload count (not undone, blocked or failed).

Then: DNC and consent scrub (suppressed contacts never enter), agent variables (contacts lacking a required
one are left out and reported), next call start in the contact's calling window (contacts that cannot be
called within the window horizon are left out as not callable). Each member's open calling intervals for the
next 14 days are stored with the build in `audience_call_windows`, for the SQL macro `callable_contacts`.

A build is frozen: its members keep their rows for ever, and `campaign_audiences` shows each campaign's
latest build. If a DNC source cannot be trusted nothing is written, so the previous build stays current.

Every read path is also decided live (sql/20_dnc.sql `audience_live_blocked`): a member whose number is listed
now, whose consent was revoked, or who left the contact book is out of `campaign_audiences`,
`callable_contacts(...)` and the exports at once, even if the rebuild that should follow was killed. A campaign
that requires the national list is callable only until its snapshot turns 31 days old: the build records that
instant (`national_not_after`) and its calling windows end there.

Why each member is callable: `dnc_snapshot` (the loads it was checked against, per list), `consent_evidence`
(consent, date, source), `timezone` / `timezone_candidates` / `timezone_source` (how its zone was decided).
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from callaro_pipeline.core import segments, windows
from callaro_pipeline.core.audiences import (
    AudienceBuild,
    audience_outcomes,
    audience_status,
    build_fields,
    config_digest,
)
from callaro_pipeline.core.config import Campaign
from callaro_pipeline.core.contact_book import as_utc_naive
from callaro_pipeline.core.errors import CallaroError, ConfigError, DncUnavailable
from callaro_pipeline.core.privacy import mask_phone
from callaro_pipeline.core.report import write_csv_safely
from callaro_pipeline.storage import suppression
from callaro_pipeline.storage.audience_versions import build_counts, latest_build, store_versions, store_windows
from callaro_pipeline.storage.uploads import update_upload

MISSING_SAMPLE_SIZE = 5
EXPORT_FORMATS = (".csv", ".parquet")


# --- building ----------------------------------------------------------------------------------------------


# Links from uploads that were undone (or never released) do not count.
_LIVE_LINKS_SQL = (
    "SELECT cc.contact_id FROM campaign_contacts AS cc LEFT JOIN uploads AS u USING (upload_id) "
    "WHERE coalesce(u.status, '') NOT IN ('undone', 'blocked', 'failed')"
)


def _candidate_ids_sql(campaign: Campaign) -> tuple[str, list[Any]]:
    if campaign.audience_segments:
        union = " UNION ".join(
            f"SELECT contact_id FROM ({segments.segment_contacts_sql(name)})"  # noqa: S608 - validated name
            for name in campaign.audience_segments
        )
        return f"SELECT contact_id FROM ({union}) WHERE contact_id IN ({_LIVE_LINKS_SQL})", []  # noqa: S608
    sql = f"{_LIVE_LINKS_SQL} AND cc.campaign = ?"
    if campaign.audience_uploads == "all":
        return sql, [campaign.name]
    return f"{sql} AND cc.upload_id IN (SELECT unnest(?::VARCHAR[]))", [campaign.name, list(campaign.audience_uploads)]


def candidate_contacts(
    con: duckdb.DuckDBPyConnection,
    campaign: Campaign,
    *,
    changed_since: datetime | None = None,
    fields: list[str] | None = None,
) -> pl.DataFrame:
    """The campaign's candidates (all of the book's columns, or `fields`); with `changed_since`, only those
    linked or updated at or after it."""
    ids, params = _candidate_ids_sql(campaign)
    book_columns = {name for (name,) in con.execute("SELECT column_name FROM (DESCRIBE contacts)").fetchall()}
    columns = "*" if fields is None else ", ".join(f'"{name}"' for name in fields if name in book_columns)
    if changed_since is not None:  # uploads campaigns only (see build_audience)
        since = as_utc_naive(changed_since)
        ids = (
            f"{ids} AND (cc.added_at >= ? OR cc.contact_id IN (SELECT contact_id FROM contacts WHERE updated_at >= ?))"  # noqa: S608
        )
        params = [*params, since, since]
    try:
        sql = f"SELECT {columns} FROM contacts WHERE contact_id IN ({ids}) ORDER BY contact_id"  # noqa: S608
        return con.execute(sql, params).pl()
    except duckdb.CatalogException:
        raise ConfigError(
            f"campaign {campaign.name}: segment(s) {', '.join(campaign.audience_segments)} not built yet (run dbt)"
        ) from None


def build_audience(
    con: duckdb.DuckDBPyConnection, campaign: Campaign, *, now: datetime, incremental: bool = False
) -> AudienceBuild:
    """Build and store a new audience for the campaign, inside the caller's transaction.

    Raises DncUnavailable, before writing anything, when a DNC source cannot be trusted.

    A full build evaluates every candidate. With `incremental` (an import run: the upload only added links and
    updated contacts) only the candidates linked or updated since the latest build are evaluated, when nothing
    else can have changed an outcome: the campaign's settings and the DNC lists are those of the latest build
    and the campaign draws on its uploads (not on segments). Either way only the contacts whose outcome or
    values changed are written (audience_member_versions), and the counts are those of the whole campaign.
    """
    problems = suppression.dnc_problems(
        con, sources=campaign.dnc_sources, require_national=campaign.require_national_dnc, now=now
    )
    if problems:
        raise DncUnavailable(f"audience for {campaign.name} not built: " + "; ".join(problems))
    dnc_snapshot = json.dumps(suppression.source_states(con, campaign.dnc_sources), sort_keys=True)
    not_after = suppression.national_not_after(con) if campaign.require_national_dnc else None
    digest = config_digest(campaign)
    builds, built_at, latest = latest_build(con, campaign.name)
    since = None
    if (
        incremental
        and builds
        and not campaign.audience_segments
        and latest.get("config_digest") == digest
        and latest.get("dnc_snapshot") == dnc_snapshot
    ):
        since = built_at
    candidates = candidate_contacts(con, campaign, changed_since=since, fields=build_fields(campaign))
    outcomes = audience_outcomes(
        suppression.scrub(con, candidates, campaign=campaign, now=now, check_coverage=True), campaign
    )
    number = builds + 1
    build_id = f"{campaign.name}-{number:06d}"
    changed = store_versions(con, campaign.name, number, outcomes, everyone=since is None)
    store_windows(con, campaign, build_id, outcomes, now, not_after=not_after)
    detail = build_counts(con, campaign.name, build_id)
    missing_sample = [
        mask_phone(phone)
        for (phone,) in con.execute(
            "SELECT phone_e164 FROM audience_member_versions WHERE campaign = ? AND to_build IS NULL "
            "AND outcome = 'missing_required' ORDER BY contact_id LIMIT ?",
            [campaign.name, MISSING_SAMPLE_SIZE],
        ).fetchall()
    ]
    source: dict[str, Any] = (
        {"segments": campaign.audience_segments}
        if campaign.audience_segments
        else {"uploads": campaign.audience_uploads}
    )
    detail |= {
        "source": source,
        "build": "incremental" if since is not None else "full",
        "evaluated": outcomes.height,
        "changed": changed,
        "config_digest": digest,
        "dnc_snapshot": dnc_snapshot,
        "national_not_after": not_after.isoformat() if not_after else None,
        "requires": {"national_dnc": campaign.require_national_dnc, "consent": campaign.require_consent},
    }
    build = AudienceBuild(
        build_id=build_id,
        campaign=campaign.name,
        members=detail.pop("members"),
        missing_required=detail["missing_required"],
        missing_sample=missing_sample,
        suppressed=detail["suppressed"],
        not_callable=detail["not_callable"],
        detail=detail,
    )
    con.execute(
        "INSERT INTO audience_builds VALUES (?, ?, ?, ?, ?, ?::JSON)",
        [build.build_id, build.campaign, as_utc_naive(now), build.members, build.missing_required, json.dumps(detail)],
    )
    return build


def build_and_report(
    warehouse: Any, campaign: Campaign, *, now: datetime, incremental: bool, upload_id: str | None
) -> AudienceBuild:
    """`build_audience` in a transaction of its own. With `upload_id` (the import's own campaign) the upload's
    summary gets the build's timing next to its other stages and its audience status, or, when the build raises
    CallaroError (re-raised), why nobody is callable (contract: audience)."""
    started = time.perf_counter()
    try:
        with warehouse.transaction() as con:
            build = build_audience(con, campaign, now=now, incremental=incremental)
            if upload_id:
                seconds = round(time.perf_counter() - started, 3)
                update_upload(con, upload_id, timings={"audience_seconds": seconds}, audience=audience_status(build))
    except CallaroError as error:
        if upload_id:
            with warehouse.transaction() as con:
                update_upload(con, upload_id, audience=audience_status(None, str(error)))
        raise
    return build


# --- export ------------------------------------------------------------------------------------------------


def audience_size(con: duckdb.DuckDBPyConnection, campaign: str) -> tuple[int, str | None]:
    """How many callable contacts the campaign's current audience holds, and the build that made it."""
    row = con.execute(
        "SELECT count(*), max(build_id) FROM campaign_audiences WHERE campaign = ?", [campaign]
    ).fetchone() or (0, None)
    return row[0], row[1]


def export_audience(con: duckdb.DuckDBPyConnection, campaign: str, out: Path) -> int:
    """Write the campaign's current audience to `.csv` (formula-safe) or `.parquet`; returns the row count."""
    out = Path(out)
    if out.suffix.lower() not in EXPORT_FORMATS:
        raise ConfigError(f"cannot export an audience to {out.name!r}: use a .csv or .parquet file")
    (builds,) = con.execute("SELECT count(*) FROM audience_builds WHERE campaign = ?", [campaign]).fetchone()
    if not builds:
        raise ConfigError(f"no audience has been built for campaign {campaign!r}")
    # the extension travels with the contact to the dialer (the audience view carries the E.164 number only)
    audience = con.execute(
        "SELECT a.*, c.phone_extension FROM campaign_audiences a LEFT JOIN contacts c USING (contact_id) "
        "WHERE a.campaign = ? ORDER BY a.contact_id",
        [campaign],
    ).pl()
    if out.suffix.lower() == ".csv":
        write_csv_safely(audience, out)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        audience.write_parquet(partial)
        os.replace(partial, out)
    return audience.height


# --- rebuilds after a DNC change -----------------------------------------------------------------------------


def affected_campaigns(con: duckdb.DuckDBPyConnection, load_id: str | None = None) -> list[str]:
    """Campaigns with a build that a DNC load can change: for numbers typed in (`load_id` of that load), the
    campaigns whose current candidates hold one of its numbers; for a file (`load_id` None: a snapshot also
    changes coverage and age), every campaign with a build."""
    if load_id is None:
        rows = con.execute("SELECT DISTINCT campaign FROM audience_builds ORDER BY 1").fetchall()
    else:
        rows = con.execute(
            """
            SELECT DISTINCT v.campaign FROM audience_member_versions v
            JOIN dnc_numbers n ON n.number = TRY_CAST(ltrim(v.phone_e164, '+') AS BIGINT)
            WHERE n.load_id = ? AND v.to_build IS NULL ORDER BY 1
            """,
            [load_id],
        ).fetchall()
    return [name for (name,) in rows]


def rebuild_campaigns(warehouse: Any, campaigns: list[str], *, now: datetime) -> dict[str, str]:
    """Build each campaign's audience anew, one transaction each; returns {campaign: problem} for those not
    rebuilt (their previous build stays current, and the live read paths already leave listed numbers out)."""
    from callaro_pipeline.core.config import list_campaigns, load_campaign

    known = set(list_campaigns())
    failures: dict[str, str] = {}
    for name in campaigns:
        if name not in known:
            continue
        try:
            campaign = load_campaign(name)
            with warehouse.transaction() as con:
                build_audience(con, campaign, now=now)
        except CallaroError as error:
            failures[name] = str(error)
    return failures


def callable_members(con: duckdb.DuckDBPyConnection, campaign: str) -> tuple[pl.DataFrame, datetime | None]:
    """For exports of calling intervals (`audience --windows`): the campaign's current members as the live read
    paths show them (campaign_audiences: listed numbers, revoked consent and removed contacts left out), and
    the instant every interval must end at (`national_not_after` of the latest build, aware UTC; None when the
    campaign does not require the national list). Cut computed intervals with `cut_intervals`."""
    members = con.execute("SELECT * FROM campaign_audiences WHERE campaign = ? ORDER BY contact_id", [campaign]).pl()
    row = con.execute(
        "SELECT detail->>'national_not_after' FROM audience_builds WHERE campaign = ? ORDER BY build_id DESC LIMIT 1",
        [campaign],
    ).fetchone()
    not_after = datetime.fromisoformat(row[0]) if row and row[0] else None
    return members, not_after


def export_windows(
    con: duckdb.DuckDBPyConnection, campaign: Campaign, out: Path, *, start: datetime, days: int
) -> tuple[int, int]:
    """`callaro audience CAMPAIGN --windows`: each current member's open calling intervals `contact_id,
    phone_e164, opens_utc, closes_utc` (UTC, [opens, closes)) from `start` for `days` days, written to a
    `.parquet` file; returns (members, intervals).

    The members are those every read path shows (`callable_members`: listed numbers, revoked consent and removed
    contacts are out); their intervals are computed by the code the build uses (windows.call_windows_for_keys, for
    each member's window key, under the campaign's window) and end where the national snapshot turns 31 days old."""
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise ConfigError(f"cannot export calling windows to {out.name!r}: use a .parquet file")
    if not 1 <= days <= windows.MAX_DAYS:
        raise ConfigError(f"--days must be between 1 and {windows.MAX_DAYS}, not {days}")
    (builds,) = con.execute("SELECT count(*) FROM audience_builds WHERE campaign = ?", [campaign.name]).fetchone()
    if not builds:
        raise ConfigError(f"no audience has been built for campaign {campaign.name!r}")
    members, not_after = callable_members(con, campaign.name)
    keys = con.execute(
        "SELECT contact_id, window_key FROM audience_member_versions "
        "WHERE campaign = ? AND to_build IS NULL AND outcome = 'member' AND window_key IS NOT NULL",
        [campaign.name],
    ).pl()
    live = members.select("contact_id", "phone_e164").join(keys, on="contact_id", how="inner")
    by_key = windows.call_windows_for_keys(
        sorted(set(live["window_key"].to_list())), campaign.window, start, days, not_after=not_after
    )
    intervals = (
        live.join(by_key, on="window_key", how="inner")
        .select("contact_id", "phone_e164", "opens_utc", "closes_utc")
        .sort("contact_id", "opens_utc")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    intervals.write_parquet(partial)
    os.replace(partial, out)
    return live.height, intervals.height

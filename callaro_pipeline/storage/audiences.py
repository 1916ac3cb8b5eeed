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

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from callaro_pipeline.core import schema, segments, windows
from callaro_pipeline.core.config import AgentVariable, Campaign
from callaro_pipeline.core.errors import ConfigError, DncUnavailable
from callaro_pipeline.core.privacy import mask_phone
from callaro_pipeline.core.report import write_csv_safely
from callaro_pipeline.storage import suppression
from callaro_pipeline.storage.contact_book import as_utc_naive
from callaro_pipeline.storage.warehouse import stage

MISSING_SAMPLE_SIZE = 5
_JSON_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
# Standard field names that the book stores under another column.
_FIELD_COLUMNS = {"phone": "phone_e164"}
CONSENT_UNIT = schema.merge_units()["consent"]  # consent, consent_date, consent_source: the consent evidence
# One row of audience_member_versions as a build computes it (campaign and build numbers are added on write).
VERSION_SCHEMA = pl.Schema(
    {
        "contact_id": pl.Utf8,
        "outcome": pl.Utf8,
        "reasons": pl.List(pl.Utf8),
        "phone_e164": pl.Utf8,
        "timezone": pl.Utf8,
        "timezone_candidates": pl.List(pl.Utf8),
        "timezone_source": pl.Utf8,
        "external_id": pl.Utf8,
        "agent_variables": pl.Utf8,
        "consent_evidence": pl.Utf8,
        "window_key": pl.Utf8,
    }
)
VERSION_COLUMNS = tuple(VERSION_SCHEMA)
_COMPARED = VERSION_COLUMNS[1:]  # a contact's new version replaces its current one when any of these differ
# Part of every build's config digest: a change to how outcomes are computed makes the next build a full one.
AUDIENCE_FORMAT = 1
EXPORT_FORMATS = (".csv", ".parquet")


@dataclass
class AudienceBuild:
    build_id: str
    campaign: str
    members: int
    missing_required: int
    missing_sample: list[str]  # masked phones
    suppressed: int
    not_callable: int
    detail: dict[str, Any]


# --- agent variables ---------------------------------------------------------------------------------------


def _non_empty(expr: pl.Expr) -> pl.Expr:
    text = expr.cast(pl.Utf8)
    return pl.when(text.str.strip_chars() != "").then(text)


def _custom_value(key: str) -> pl.Expr:
    return _non_empty(pl.col("custom_fields").cast(pl.Utf8).str.json_path_match(f"$.{key}"))


def _static_value(value: Any) -> pl.Expr:
    text = value if isinstance(value, str) or value is None else json.dumps(value)
    return pl.lit(text, dtype=pl.Utf8)


def _variable_expr(variable: AgentVariable, columns: list[str]) -> pl.Expr:
    """Precedence: the contact's standard field, then its custom field of that name, then the static value."""
    key = variable.field or variable.name
    if not _JSON_KEY.match(key):
        raise ConfigError(f"agent variable {variable.name}: invalid field name {key!r}")
    chain = []
    if variable.source == "field":
        column = _FIELD_COLUMNS.get(key, key)
        if column not in columns:
            raise ConfigError(f"agent variable {variable.name}: {key!r} is not a contact field")
        chain.append(_non_empty(pl.col(column)))
    if variable.source in ("field", "custom"):
        chain.append(_custom_value(key))
    chain.append(_static_value(variable.value))
    return pl.coalesce(chain).alias(variable.name)


def resolve_agent_variables(
    contacts: pl.DataFrame, variables: list[AgentVariable]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Add `agent_variables` (JSON object) to each contact.

    Returns (contacts that have every required variable, with `agent_variables`;
    contacts left out: `contact_id`, `missing` = the required variable names they lack).
    """
    names = [variable.name for variable in variables]
    if len(set(names)) != len(names):
        raise ConfigError("agent variable names must be unique")
    if not variables:
        return contacts.with_columns(pl.lit("{}").alias("agent_variables")), pl.DataFrame(
            schema={"contact_id": pl.Utf8, "missing": pl.List(pl.Utf8)}
        )
    values = pl.struct([_variable_expr(variable, contacts.columns) for variable in variables])
    lacking = [
        pl.when(pl.col("_values").struct.field(variable.name).is_null()).then(pl.lit(variable.name))
        for variable in variables
        if variable.required
    ]
    missing = pl.concat_list(lacking).list.drop_nulls() if lacking else pl.lit([], dtype=pl.List(pl.Utf8))
    resolved = (
        contacts.with_columns(values.alias("_values"))
        .with_columns(pl.col("_values").struct.json_encode().alias("agent_variables"), missing.alias("missing"))
        .drop("_values")
    )
    complete = pl.col("missing").list.len() == 0
    return resolved.filter(complete).drop("missing"), resolved.filter(~complete).select("contact_id", "missing")


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


def _build_fields(campaign: Campaign) -> list[str]:
    """The book's columns a build reads: the member's values, the scrub's, the calling windows', and the fields
    its agent variables name (a million candidates with every column cost a GB of memory)."""
    fields = ["contact_id", "phone_e164", "timezone", "timezone_candidates", "timezone_source", "external_id"]
    fields += ["consent", "consent_date", "consent_source", "state", "phone_state", "custom_fields"]
    fields += ["postal_code", "country", "phone_region"]  # calling windows: the ZIP's state, Canada
    for variable in campaign.agent_variables:
        if variable.source == "field":
            fields.append(_FIELD_COLUMNS.get(variable.field or variable.name, variable.field or variable.name))
    return list(dict.fromkeys(fields))


def _counts(rows: list[tuple[str, int]]) -> dict[str, int]:
    """{value: count}, largest count first (as polars' value_counts(sort=True) gave them)."""
    return dict(sorted(rows, key=lambda row: (-row[1], row[0])))


def _config_digest(campaign: Campaign) -> str:
    """What a build's outcomes depend on besides the contacts and the DNC lists: the campaign's settings."""
    settings = json.dumps({"format": AUDIENCE_FORMAT, **campaign.to_yaml_dict()}, sort_keys=True, default=str)
    return hashlib.sha256(settings.encode()).hexdigest()[:16]


def _latest_build(con: duckdb.DuckDBPyConnection, campaign: str) -> tuple[int, datetime | None, dict[str, Any]]:
    """(number of builds so far, when the latest was built, its detail)."""
    row = con.execute(
        "SELECT count(*) OVER (), built_at, detail FROM audience_builds WHERE campaign = ? "
        "ORDER BY build_id DESC LIMIT 1",
        [campaign],
    ).fetchone()
    return (row[0], row[1], json.loads(row[2] or "{}")) if row else (0, None, {})


def _outcomes(scrubbed: pl.DataFrame, campaign: Campaign) -> pl.DataFrame:
    """One row per candidate: its outcome (member | suppressed | missing_required), the reasons, and the values
    a member carries (VERSION_COLUMNS)."""
    is_suppressed = pl.col("reasons").list.len() > 0
    complete, missing = resolve_agent_variables(scrubbed.filter(~is_suppressed), campaign.agent_variables)
    evidence = pl.struct(*CONSENT_UNIT).struct.json_encode().alias("consent_evidence")
    members = complete.with_columns(
        evidence,
        pl.lit("member").alias("outcome"),
        pl.lit(None, pl.List(pl.Utf8)).alias("reasons"),
        windows.window_keys(complete).alias("window_key"),
    )
    suppressed = scrubbed.filter(is_suppressed).with_columns(
        evidence,
        pl.lit("suppressed").alias("outcome"),
        pl.lit(None, pl.Utf8).alias("agent_variables"),
        pl.lit(None, pl.Utf8).alias("window_key"),
    )
    lacking = (
        scrubbed.drop("reasons")
        .join(missing.rename({"missing": "reasons"}), on="contact_id")
        .with_columns(
            evidence,
            pl.lit("missing_required").alias("outcome"),
            pl.lit(None, pl.Utf8).alias("agent_variables"),
            pl.lit(None, pl.Utf8).alias("window_key"),
        )
    )
    return pl.concat([frame.select(VERSION_COLUMNS).cast(VERSION_SCHEMA) for frame in (members, suppressed, lacking)])


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
    digest = _config_digest(campaign)
    builds, built_at, latest = _latest_build(con, campaign.name)
    since = None
    if (
        incremental
        and builds
        and not campaign.audience_segments
        and latest.get("config_digest") == digest
        and latest.get("dnc_snapshot") == dnc_snapshot
    ):
        since = built_at
    candidates = candidate_contacts(con, campaign, changed_since=since, fields=_build_fields(campaign))
    outcomes = _outcomes(suppression.scrub(con, candidates, campaign=campaign, now=now, check_coverage=True), campaign)
    number = builds + 1
    build_id = f"{campaign.name}-{number:06d}"
    changed = _store_versions(con, campaign.name, number, outcomes, everyone=since is None)
    _store_windows(con, campaign, build_id, outcomes, now, not_after=not_after)
    detail = _build_counts(con, campaign.name, build_id)
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


def _store_versions(
    con: duckdb.DuckDBPyConnection, campaign: str, number: int, outcomes: pl.DataFrame, *, everyone: bool
) -> int:
    """Close the current versions that differ from `outcomes` (or, with `everyone`, that `outcomes` lacks: the
    contacts no longer candidates) and open versions for the rest; returns the number of versions opened.

    Every join builds its hash table on the current versions of the contacts evaluated, or on their ids: after
    an import that is what the upload touched, not the upload's million new contacts with all their values.
    """
    staged = stage(con, "_outcomes", outcomes)
    compared = ", ".join(_COMPARED)
    same = " AND ".join(f"c.{name} IS NOT DISTINCT FROM o.{name}" for name in _COMPARED)
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
        (opened,) = con.execute(
            f"""
            INSERT INTO audience_member_versions BY NAME
            SELECT ? AS campaign, ? AS from_build, NULL AS to_build, o.*
            FROM {staged} AS o WHERE o.contact_id NOT IN (SELECT contact_id FROM _unchanged)
            """,  # noqa: S608 - identifiers from code
            [campaign, number],
        ).fetchone()
    finally:
        con.execute("DROP TABLE IF EXISTS _current")
        con.execute("DROP TABLE IF EXISTS _unchanged")
        con.unregister(staged)
    return opened


def _store_windows(
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


def cut_intervals(intervals: pl.DataFrame, not_after: datetime | None) -> pl.DataFrame:
    """Intervals (`opens_utc`, `closes_utc`, UTC, closes exclusive) ended at `not_after`: those opening at or
    after it are dropped, the one spanning it closes there."""
    if not_after is None or intervals.is_empty():
        return intervals
    limit = pl.lit(not_after.astimezone(UTC)).cast(intervals.schema["closes_utc"])
    return intervals.filter(pl.col("opens_utc") < limit).with_columns(
        pl.min_horizontal("closes_utc", limit).alias("closes_utc")
    )


def _build_counts(con: duckdb.DuckDBPyConnection, campaign: str, build_id: str) -> dict[str, Any]:
    """The campaign-wide counts of the build, from the current versions."""
    current = "FROM audience_member_versions WHERE campaign = ? AND to_build IS NULL"
    candidates, suppressed, missing, members, not_callable = con.execute(
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
    ).fetchone()

    def by_reason(outcome: str) -> dict[str, int]:
        return _counts(
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


# --- export ------------------------------------------------------------------------------------------------


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
    from callaro_pipeline.core.errors import CallaroError

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


def audience_status(build: AudienceBuild | None, problem: str | None = None) -> dict[str, Any]:
    """The import summary's `audience`: {status: built | not_built, callable, reason} — why nobody (or not
    everybody) is callable, in words (counts and reason codes only, never values)."""
    if build is None:
        return {"status": "not_built", "callable": 0, "reason": problem or "the audience was not built"}
    reason = None
    if build.members == 0:
        by_reason = build.detail.get("suppressed_by_reason") or {}
        parts = [f"{code} {count}" for code, count in by_reason.items()]
        if build.missing_required:
            parts.append(f"missing agent variables {build.missing_required}")
        if build.not_callable:
            parts.append(f"no open calling window {build.not_callable}")
        reason = "nobody is callable yet" + (f": {', '.join(parts)}" if parts else ": no candidates")
    return {"status": "built", "callable": build.members, "reason": reason, "build_id": build.build_id}


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

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
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from callaro_pipeline import segments, suppression, windows
from callaro_pipeline.config import AgentVariable, Campaign
from callaro_pipeline.contact_book import as_utc_naive
from callaro_pipeline.errors import ConfigError, DncUnavailable
from callaro_pipeline.privacy import mask_phone
from callaro_pipeline.report import write_csv_safely
from callaro_pipeline.warehouse import stage

MISSING_SAMPLE_SIZE = 5
_JSON_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
# Standard field names that the book stores under another column.
_FIELD_COLUMNS = {"phone": "phone_e164"}
_MEMBER_COLUMNS = (
    "contact_id",
    "phone_e164",
    "timezone",
    "timezone_candidates",
    "timezone_source",
    "external_id",
    "next_call_start_utc",
    "agent_variables",
    "dnc_snapshot",
    "consent_evidence",
)
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


def candidate_contacts(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> pl.DataFrame:
    ids, params = _candidate_ids_sql(campaign)
    try:
        return con.execute(f"SELECT * FROM contacts WHERE contact_id IN ({ids}) ORDER BY contact_id", params).pl()  # noqa: S608
    except duckdb.CatalogException:
        raise ConfigError(
            f"campaign {campaign.name}: segment(s) {', '.join(campaign.audience_segments)} not built yet (run dbt)"
        ) from None


def _value_counts(values: pl.Series) -> dict[str, int]:
    counts = values.value_counts(sort=True)
    return dict(zip(counts[values.name].to_list(), counts["count"].to_list(), strict=True))


def _next_build_id(con: duckdb.DuckDBPyConnection, campaign: str) -> str:
    (count,) = con.execute("SELECT count(*) FROM audience_builds WHERE campaign = ?", [campaign]).fetchone()
    return f"{campaign}-{count + 1:06d}"


def _member_rows(callable_contacts: pl.DataFrame, build_id: str, campaign: str) -> pl.DataFrame:
    evidence = pl.struct("consent", "consent_date", "consent_source").struct.json_encode().alias("consent_evidence")
    return callable_contacts.with_columns(
        evidence,
        # Stored as naive UTC, the warehouse convention.
        pl.col("next_call_start_utc").dt.convert_time_zone("UTC").dt.replace_time_zone(None),
    ).select(pl.lit(build_id).alias("build_id"), pl.lit(campaign).alias("campaign"), *_MEMBER_COLUMNS)


def _insert_staged(con: duckdb.DuckDBPyConnection, table: str, rows: pl.DataFrame) -> None:
    staged = stage(con, f"_staged_{table}", rows)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {staged}")  # noqa: S608 - identifiers from code
    con.unregister(staged)


def _write_build(
    con: duckdb.DuckDBPyConnection,
    build: AudienceBuild,
    now: datetime,
    members: pl.DataFrame,
    call_windows: pl.DataFrame,
) -> None:
    con.execute(
        "INSERT INTO audience_builds VALUES (?, ?, ?, ?, ?, ?::JSON)",
        [
            build.build_id,
            build.campaign,
            as_utc_naive(now),
            build.members,
            build.missing_required,
            json.dumps(build.detail),
        ],
    )
    _insert_staged(con, "audience_members", members)
    _insert_staged(con, "audience_call_windows", call_windows.with_columns(pl.lit(build.build_id).alias("build_id")))


def build_audience(con: duckdb.DuckDBPyConnection, campaign: Campaign, *, now: datetime) -> AudienceBuild:
    """Build and store a new audience for the campaign, inside the caller's transaction.

    Raises DncUnavailable, before writing anything, when a DNC source cannot be trusted.
    """
    problems = suppression.dnc_problems(
        con, sources=campaign.dnc_sources, require_national=campaign.require_national_dnc, now=now
    )
    if problems:
        raise DncUnavailable(f"audience for {campaign.name} not built: " + "; ".join(problems))
    candidates = candidate_contacts(con, campaign)
    scrubbed = suppression.scrub(con, candidates, campaign=campaign)
    is_suppressed = pl.col("reasons").list.len() > 0
    suppressed = scrubbed.filter(is_suppressed)
    complete, missing = resolve_agent_variables(scrubbed.filter(~is_suppressed), campaign.agent_variables)
    aware_now = now if now.tzinfo else now.replace(tzinfo=UTC)
    timed = complete.with_columns(
        windows.next_call_start(complete, campaign.window, aware_now).alias("next_call_start_utc")
    )
    callable_contacts = timed.filter(pl.col("next_call_start_utc").is_not_null())
    missing_phones = missing.join(candidates.select("contact_id", "phone_e164"), on="contact_id")
    build_id = _next_build_id(con, campaign.name)
    not_callable = timed.height - callable_contacts.height
    detail: dict[str, Any] = {
        "candidates": candidates.height,
        "suppressed": suppressed.height,
        "suppressed_by_reason": _value_counts(suppressed["reasons"].explode()),
        "missing_required": missing.height,
        "missing_by_variable": _value_counts(missing["missing"].explode()),
        "not_callable": not_callable,
        "source": {"segments": campaign.audience_segments}
        if campaign.audience_segments
        else {"uploads": campaign.audience_uploads},
    }
    build = AudienceBuild(
        build_id=build_id,
        campaign=campaign.name,
        members=callable_contacts.height,
        missing_required=missing.height,
        missing_sample=[mask_phone(phone) for phone in missing_phones["phone_e164"].head(MISSING_SAMPLE_SIZE)],
        suppressed=suppressed.height,
        not_callable=not_callable,
        detail=detail,
    )
    members = _member_rows(callable_contacts, build_id, campaign.name)
    # Precomputed open intervals, read by the SQL macro callable_contacts(campaign, ts).
    intervals = windows.call_windows(callable_contacts, campaign.window, aware_now)
    _write_build(con, build, now, members, intervals)
    return build


# --- export ------------------------------------------------------------------------------------------------


def export_audience(con: duckdb.DuckDBPyConnection, campaign: str, out: Path) -> int:
    """Write the campaign's current audience to `.csv` (formula-safe) or `.parquet`; returns the row count."""
    out = Path(out)
    if out.suffix.lower() not in EXPORT_FORMATS:
        raise ConfigError(f"cannot export an audience to {out.name!r}: use a .csv or .parquet file")
    (builds,) = con.execute("SELECT count(*) FROM audience_builds WHERE campaign = ?", [campaign]).fetchone()
    if not builds:
        raise ConfigError(f"no audience has been built for campaign {campaign!r}")
    audience = con.execute("SELECT * FROM campaign_audiences WHERE campaign = ? ORDER BY contact_id", [campaign]).pl()
    if out.suffix.lower() == ".csv":
        write_csv_safely(audience, out)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        audience.write_parquet(partial)
        os.replace(partial, out)
    return audience.height

"""Campaign audiences, the pure rules: a build's outcome per candidate (member, suppressed, missing_required),
its agent variables, the settings digest that decides whether a build may be incremental, and calling
intervals cut at the national snapshot's limit. Polars frames and plain values in and out; the SQL that reads
candidates and builds is storage.audiences (what a build stores: storage.audience_versions).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from callaro_pipeline.core import schema, windows
from callaro_pipeline.core.campaign_settings import AgentVariable
from callaro_pipeline.core.config import Campaign
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.privacy import mask_phone

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
COMPARED_COLUMNS = VERSION_COLUMNS[1:]  # a contact's new version replaces its current one when any of these differ
# Part of every build's config digest: a change to how outcomes are computed makes the next build a full one.
AUDIENCE_FORMAT = 1


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


def build_fields(campaign: Campaign) -> list[str]:
    """The book's columns a build reads: the member's values, the scrub's, the calling windows', and the fields
    its agent variables name (a million candidates with every column cost a GB of memory)."""
    fields = ["contact_id", "phone_e164", "timezone", "timezone_candidates", "timezone_source", "external_id"]
    fields += ["consent", "consent_date", "consent_source", "state", "phone_state", "custom_fields"]
    fields += ["postal_code", "country", "phone_region"]  # calling windows: the ZIP's state, Canada
    for variable in campaign.agent_variables:
        if variable.source == "field":
            fields.append(_FIELD_COLUMNS.get(variable.field or variable.name, variable.field or variable.name))
    return list(dict.fromkeys(fields))


def counts_largest_first(rows: list[tuple[str, int]]) -> dict[str, int]:
    """{value: count}, largest count first (as polars' value_counts(sort=True) gave them)."""
    return dict(sorted(rows, key=lambda row: (-row[1], row[0])))


def config_digest(campaign: Campaign) -> str:
    """What a build's outcomes depend on besides the contacts and the DNC lists: the campaign's settings."""
    settings = json.dumps({"format": AUDIENCE_FORMAT, **campaign.to_yaml_dict()}, sort_keys=True, default=str)
    return hashlib.sha256(settings.encode()).hexdigest()[:16]


def audience_outcomes(scrubbed: pl.DataFrame, campaign: Campaign) -> pl.DataFrame:
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


def cut_intervals(intervals: pl.DataFrame, not_after: datetime | None) -> pl.DataFrame:
    """Intervals (`opens_utc`, `closes_utc`, UTC, closes exclusive) ended at `not_after`: those opening at or
    after it are dropped, the one spanning it closes there."""
    if not_after is None or intervals.is_empty():
        return intervals
    limit = pl.lit(not_after.astimezone(UTC)).cast(intervals.schema["closes_utc"])
    return intervals.filter(pl.col("opens_utc") < limit).with_columns(
        pl.min_horizontal("closes_utc", limit).alias("closes_utc")
    )


# --- reporting ---------------------------------------------------------------------------------------------


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


def build_summary(build: AudienceBuild) -> dict[str, Any]:
    """A build's counts for the run's metadata (phones masked)."""
    return {
        "build_id": build.build_id,
        "members": build.members,
        "suppressed": build.suppressed,
        "missing_required": build.missing_required,
        "missing_sample_masked": [mask_phone(p) if p and "*" not in p else p for p in build.missing_sample],
        "not_callable": build.not_callable,
    }

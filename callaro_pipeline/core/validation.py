"""Row validation: mapped rows in, accepted contacts and one problem line per problem out.

Every check is a vectorized expression over the whole frame; library calls (phonenumbers, email-validator) run
once per distinct value and are joined back. A row with any problem is rejected as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl

from callaro_pipeline.core import schema
from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.config import load_custom_fields
from callaro_pipeline.core.field_checks import (
    consent_answer,
    consent_date_problem,
    consent_date_value,
    custom_field_checks,
    email_verdicts,
    garbled_text_checks,
    is_too_long,
    length_checks,
)
from callaro_pipeline.core.phones import PHONE_COLUMNS, normalize_phones
from callaro_pipeline.core.problems import FIELD_MAX_LENGTHS, Check, cut_text
from callaro_pipeline.core.timezones import resolve_timezones

# The validated_contacts columns (without upload_id), the longest value accepted per field in characters (a
# longer one is rejected as `value_too_long`): from the field registry.
VALIDATED_COLUMNS = schema.VALIDATED_COLUMNS
MAX_REPORT_VALUE_CHARS = 1000
MAX_MESSAGE_CHARS = 300
NAME_FIELDS = schema.IDENTITY_FIELDS


@dataclass
class ValidationResult:
    valid: pl.DataFrame
    """one row per accepted source row, columns VALIDATED_COLUMNS (validated_contacts without upload_id)"""
    problems: pl.DataFrame
    """PROBLEM_SCHEMA: one line per problem, sorted by row_number"""
    rows_read: int


def choose_phones(mapped: pl.DataFrame, default_region: str) -> pl.DataFrame:
    """normalize_phones' columns for each row, plus `phone` (the raw value chosen) and `other_phones_e164`.

    With several phone columns (`phone_alternates`, in priority order after `phone`) the first valid number is
    the phone and the other valid ones, deduplicated, are `other_phones_e164` (to be scrubbed like the phone).
    When none is valid the first non-blank value is judged (its problem is reported)."""
    if "phone_alternates" not in mapped.columns:
        answers = normalize_phones(mapped.get_column("phone"), default_region)
        return answers.with_columns(
            mapped.get_column("phone"), pl.lit(None, pl.List(pl.Utf8)).alias("other_phones_e164")
        )
    candidates = (
        mapped.select(
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"),
            pl.concat_list(pl.col("phone"), pl.col("phone_alternates").fill_null([])).alias("_raw"),
        )
        .explode("_raw")
        .with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).over("_row").alias("_position"))
    )
    answers = pl.concat(
        [candidates, normalize_phones(candidates.get_column("_raw"), default_region)], how="horizontal"
    ).with_columns(
        pl.col("phone_error").is_null().alias("_valid"),
        pl.col("_raw").is_not_null().alias("_given"),
    )
    # per row: the first valid candidate, else the first given one, else the first (the blank phone)
    rank = pl.when(pl.col("_valid")).then(0).when(pl.col("_given")).then(1).otherwise(2)
    chosen = (
        answers.with_columns(rank.alias("_rank"))
        .sort("_row", "_rank", "_position")
        .group_by("_row", maintain_order=True)
        .agg(
            pl.all().first(),
            pl.col("phone_e164").filter(pl.col("_valid")).unique(maintain_order=True).alias("_valid_numbers"),
        )
    )
    others = pl.col("_valid_numbers").list.set_difference(pl.concat_list(pl.col("phone_e164").fill_null("")))
    return chosen.sort("_row").select(
        *PHONE_COLUMNS,
        pl.col("_raw").alias("phone"),
        pl.when(others.list.len() > 0).then(others).otherwise(None).cast(pl.List(pl.Utf8)).alias("other_phones_e164"),
    )


def _checks(source_columns: dict[str, str], registry: dict[str, CustomField]) -> list[Check]:
    name_missing = pl.all_horizontal(pl.col(name).is_null() for name in NAME_FIELDS)
    return [
        Check(
            "phone",
            "missing_required",
            pl.col("phone_error") == "missing_required",
            pl.col("phone_error_message"),
            pl.col("phone"),
        ),
        Check(
            "phone",
            "invalid_phone",
            pl.col("phone_error") == "invalid_phone",
            pl.col("phone_error_message"),
            pl.col("phone"),
        ),
        Check(
            "name",
            "missing_required",
            name_missing,
            pl.lit("a name (first_name, last_name or full_name) or an external_id is required"),
            pl.lit(None, pl.Utf8),
        ),
        Check(
            "email",
            "invalid_email",
            pl.col("email_error").is_not_null() & ~is_too_long("email", FIELD_MAX_LENGTHS["email"]),
            pl.col("email_error"),
            pl.col("email"),
        ),
        # an unreadable time zone does not reject the row: it is kept with timezone_source "invalid" (no
        # candidates, never callable) or zoned from its other evidence, so it can be fixed later (contract)
        Check(
            "consent",
            "invalid_consent",
            pl.col("consent_normalized").is_null(),
            pl.lit("consent must be yes, no or unknown (or y/n, true/false, 1/0, opt-in/opt-out)"),
            pl.col("consent"),
        ),
        Check(
            "consent_date",
            "invalid_consent",
            pl.col("consent_date_problem"),
            pl.lit("consent_date must be a real date, not in the future (YYYY-MM-DD or MM/DD/YYYY)"),
            pl.col("consent_date"),
        ),
        *custom_field_checks(registry, set(source_columns)),
        *length_checks(registry, set(source_columns)),
        *garbled_text_checks(set(source_columns)),
    ]


def _problem_lines(checked: pl.DataFrame, check: Check, source_columns: dict[str, str]) -> pl.DataFrame:
    if check.field == "name":
        column = ", ".join(source_columns[name] for name in NAME_FIELDS if name in source_columns) or None
    else:
        column = source_columns.get(check.field)
    return checked.filter(check.failed).select(
        pl.col("row_number"),
        pl.lit(column, pl.Utf8).alias("column"),
        pl.lit(check.field).alias("field"),
        pl.lit(check.code).alias("code"),
        cut_text(check.message.cast(pl.Utf8), MAX_MESSAGE_CHARS).alias("message"),
        cut_text(check.value.cast(pl.Utf8), MAX_REPORT_VALUE_CHARS).alias("value"),
    )


def _malformed_lines(malformed: pl.DataFrame) -> pl.DataFrame:
    return malformed.select(
        pl.col("row_number").cast(pl.Int64),
        pl.lit(None, pl.Utf8).alias("column"),
        pl.lit(None, pl.Utf8).alias("field"),
        pl.lit("malformed_row").alias("code"),
        pl.col("message").cast(pl.Utf8),
        pl.lit(None, pl.Utf8).alias("value"),
    )


def validate_contacts(
    mapped: pl.DataFrame,
    *,
    source_columns: dict[str, str],
    default_region: str = "US",
    registry: dict[str, CustomField] | None = None,
    malformed: pl.DataFrame | None = None,
    today: date | None = None,
) -> ValidationResult:
    """Check mapped rows (apply_mapping's output). `source_columns` (field -> source column) names the column
    of each problem; `registry` defaults to the configured custom-field registry; `malformed` holds the
    reader's unreadable lines (row_number, message)."""
    registry = load_custom_fields() if registry is None else registry
    phones = choose_phones(mapped, default_region)  # the first valid of several phone columns
    with_phones = pl.concat([mapped.drop("phone", "phone_alternates", strict=False), phones], how="horizontal")
    # the verdicts joined to the e-mail column alone: a join of the whole frame would copy every column
    emails = mapped.select("email").join(
        email_verdicts(mapped.get_column("email")), on="email", how="left", maintain_order="left"
    )
    checked = resolve_timezones(with_phones.with_columns(pl.col("timezone").alias("timezone_given"))).with_columns(
        emails.get_column("email_normalized"),
        emails.get_column("email_error"),
        consent_answer(pl.col("consent")).alias("consent_normalized"),
    )
    today = today or datetime.now(UTC).date()
    checked = checked.with_columns(
        consent_date_problem(pl.col("consent_normalized"), pl.col("consent_date"), today).alias("consent_date_problem"),
        consent_date_value(pl.col("consent_date")).dt.to_string("%Y-%m-%d").alias("consent_date_normalized"),
    )
    malformed = (
        malformed if malformed is not None else pl.DataFrame(schema={"row_number": pl.Int64, "message": pl.Utf8})
    )
    problems = pl.concat(
        [
            _malformed_lines(malformed),
            *(_problem_lines(checked, check, source_columns) for check in _checks(source_columns, registry)),
        ]
    ).sort("row_number", maintain_order=True)
    # columns chosen before the rows are filtered, and a frame already in row order is not sorted again: on a
    # million rows every full copy of the frame costs hundreds of MB of peak memory
    valid = (
        checked.with_columns(
            pl.col("email_normalized").alias("email"),
            pl.col("consent_normalized").alias("consent"),
            pl.col("consent_date_normalized").alias("consent_date"),
            pl.col("timezone_candidates").cast(pl.List(pl.Utf8)),
        )
        .select(VALIDATED_COLUMNS)
        .filter(~pl.col("row_number").is_in(problems.get_column("row_number").implode()))
    )
    if not valid.get_column("row_number").is_sorted():
        valid = valid.sort("row_number")
    rows_read = pl.concat([mapped.get_column("row_number"), malformed.get_column("row_number").cast(pl.Int64)])
    return ValidationResult(valid=valid, problems=problems, rows_read=rows_read.n_unique())

"""The Pandera gate: row-level rules on the validated contacts, reported as counts and words only."""

from __future__ import annotations

import functools
import re
import zoneinfo
from typing import TYPE_CHECKING, Any

import polars as pl

from callaro_pipeline.core import schema
from callaro_pipeline.core.timezones import TIMEZONE_SOURCES

if TYPE_CHECKING:
    import pandera.polars as pa

from callaro_pipeline.core.gates import PANDERA_GATE, GateResult, MetadataValue

E164_PATTERN = r"^\+[1-9]\d{6,14}$"
CONSENT_VALUES = ("yes", "no", "unknown")
# The duplicate key of validated contacts: two rows that differ only by extension are two contacts.
UNIQUE_KEY = schema.CONTACT_KEY
UNIQUE_KEY_LABEL = "_".join(UNIQUE_KEY)


def pandera_rules(pa: Any) -> dict[str, Any]:
    """The Pandera check of each registry rule (schema.Field.rule), by its error name."""
    return {
        "row_number_after_header": pa.Check.ge(2, error="row_number_after_header"),
        "e164_format": pa.Check.str_matches(E164_PATTERN, error="e164_format"),
        "consent_value": pa.Check.isin(CONSENT_VALUES, error="consent_value"),
        "iana_timezone": pa.Check.isin(sorted(zoneinfo.available_timezones()), error="iana_timezone"),
        "timezone_source_value": pa.Check.isin(TIMEZONE_SOURCES, error="timezone_source_value"),
    }


@functools.cache
def validated_contacts_schema() -> pa.DataFrameSchema:
    """The validated_contacts table (without upload_id) as a Pandera schema, generated from the field registry
    (type, nullable, unique, rule of every gated validated field); extra columns are allowed. Unique with the
    extension (the duplicate key): one switchboard number may carry several extensions."""
    import pandera.polars as pa  # imports pandas too: seconds that definition loading need not pay

    rules = pandera_rules(pa)
    columns = {
        f.name: pa.Column(
            schema.polars_dtype(f),
            rules[f.rule] if f.rule else None,
            nullable=f.nullable,
            unique=f.unique,
        )
        for f in schema.fields(table="validated_contacts", gated=True)
    }
    return pa.DataFrameSchema(columns, name="validated_contacts", strict=False, unique=list(UNIQUE_KEY))


def pandera_gate(valid: pl.DataFrame) -> GateResult:
    from pandera.errors import SchemaErrors

    rows = valid.height
    try:
        validated_contacts_schema().validate(valid, lazy=True)
    except SchemaErrors as errors:
        failures = errors.failure_cases
        counts = failure_counts(failures)
        bad_rows = failing_row_count(failures)
        metadata: dict[str, MetadataValue] = {
            "rows_checked": rows,
            "rows_failing": bad_rows,
            "failing_checks": len(counts),
            **{f"failures.{key}": count for key, count in counts.items()},
        }
        return GateResult(PANDERA_GATE, False, pandera_failure_sentence(rows, bad_rows, counts), metadata)
    return GateResult(
        PANDERA_GATE,
        True,
        f"all {rows:,} validated contact{'' if rows == 1 else 's'} match the validated_contacts schema",
        {"rows_checked": rows, "rows_failing": 0, "failing_checks": 0},
    )


def failure_counts(failure_cases: pl.DataFrame) -> dict[str, int]:
    """`column.check` -> number of failure cases; reads only the column and check names, never the cell values."""
    labelled = failure_cases.select(
        pl.when(pl.col("check") == "column_in_dataframe")
        # For a missing column Pandera names the schema as `column` and the missing column as the case.
        .then(pl.col("failure_case").cast(pl.Utf8))
        # the schema-level unique key (phone and extension) is named by its columns, not by the schema
        .when(pl.col("check") == "multiple_fields_uniqueness")
        .then(pl.lit(UNIQUE_KEY_LABEL))
        .otherwise(pl.col("column"))
        .alias("column"),
        pl.col("check"),
    )
    grouped = labelled.group_by("column", "check").len().sort("column", "check")
    return {
        f"{column or 'frame'}.{check_label(check)}": count
        for column, check, count in grouped.select("column", "check", "len").iter_rows()
    }


def check_label(check: str | None) -> str:
    """Pandera's built-in check names look like `dtype('String')`; make them metadata-key friendly."""
    return re.sub(r"[^a-z0-9_]+", "_", str(check).lower()).strip("_") or "unknown"


def failing_row_count(failure_cases: pl.DataFrame) -> int:
    """Distinct rows named by a failure; column-level failures (wrong type, missing column) carry no index."""
    return failure_cases.get_column("index").drop_nulls().n_unique()


def pandera_failure_sentence(rows: int, bad_rows: int, counts: dict[str, int]) -> str:
    checks = ", ".join(f"{key} ({count:,})" for key, count in counts.items())
    if bad_rows:
        return f"{bad_rows:,} of {rows:,} validated contacts break the schema: {checks}"
    return f"the validated contacts frame does not have the expected shape: {checks}"

"""Duplicate handling within a campaign: the key is the E.164 phone plus extension, and the external_id where one
is given. Two rows for one switchboard number with different extensions are two people, not duplicates (a row
without an extension is the number's main line: a key of its own).

Rows already in the campaign are skipped under every policy (so re-importing a corrected subset adds only what is
new). Within the file, rows sharing a phone or an external_id, directly or through each other, form one group led
by its first row; the policy decides what happens to the others:

- suppress: they are rejected as `duplicate`;
- merge: they are folded into the first row, first non-empty value per field wins, and conflicts are listed;
- split: they are set aside in `split_rows` (the duplicates file, for another campaign).

Whatever the policy, a "no" to consent (an opt-out) is never lost as a duplicate: the row kept for a group takes
the consent evidence of the group's latest "no", and a "no" for a contact already in the campaign is kept (one row
per phone, the latest) so that it revokes: the scrub suppresses it (`consent_revoked`) and the contact book takes
the revocation from the upload's validated rows (contact_book.merge_upload_into_book).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import polars as pl

from callaro_pipeline.core import schema
from callaro_pipeline.core.campaign_settings import DUPLICATE_POLICIES
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.mapping import CUSTOM_PREFIX
from callaro_pipeline.core.problems import PROBLEM_SCHEMA, empty_problems

GROUP = "duplicate_of"
CONFLICT_SCHEMA = pl.Schema(
    {
        "row_number": pl.Int64,
        "field": pl.Utf8,
        "kept_row": pl.Int64,
        "other_row": pl.Int64,
    }
)
# Values that only make sense together are merged as a unit, taken from the first row whose lead value is set:
# a phone with its extension and type, a resolved zone with its candidates and source, consent with its evidence.
# From the field registry (schema.Field.merge / unit).
MERGE_UNITS = schema.merge_units()
# The row's own number (the group's) and the custom fields (merged key by key, as `custom.<name>` columns).
_NOT_MERGED_AS_VALUES = schema.names(schema.fields(merge="never") + schema.fields(merge="per_key"))


@dataclass
class DuplicateResult:
    kept: pl.DataFrame
    """rows to import, same columns as the validated frame"""
    problems: pl.DataFrame
    """code `duplicate` lines, same columns as ValidationResult.problems"""
    split_rows: pl.DataFrame
    """policy split: the rows set aside for another campaign"""
    conflicts: pl.DataFrame
    """policy merge: row_number (the merged contact), field, kept_row (whose value won), other_row — no values"""
    skipped_existing: int
    """rows whose phone or external_id is already in the campaign"""


# The phone part of the key: the E.164 number and the extension (empty when none; trimmed).
PHONE_KEY = ["phone_e164", "_extension"]


def _extension_key(rows: pl.DataFrame) -> pl.Expr:
    if "phone_extension" not in rows.columns:
        return pl.lit("", pl.Utf8).alias("_extension")
    return pl.col("phone_extension").cast(pl.Utf8).str.strip_chars().fill_null("").alias("_extension")


def _problem_lines(
    rows: pl.DataFrame, field: pl.Expr, message: pl.Expr, source_columns: dict[str, str]
) -> pl.DataFrame:
    """One `duplicate` line per row; `field` evaluates to "phone" or "external_id"."""
    return rows.select(
        pl.col("row_number"),
        field.replace_strict(source_columns, default=None, return_dtype=pl.Utf8).alias("column"),
        field.alias("field"),
        pl.lit("duplicate").alias("code"),
        message.alias("message"),
        pl.when(field == "phone").then(pl.col("phone_e164")).otherwise(pl.col("external_id")).alias("value"),
    ).cast(PROBLEM_SCHEMA)


def _split_existing(valid: pl.DataFrame, existing: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows new to the campaign, rows already in it with `existing_upload` and `existing_key`)."""
    if existing is None or existing.is_empty():
        return valid, valid.clear().with_columns(
            pl.lit(None, pl.Utf8).alias("existing_upload"), pl.lit(None, pl.Utf8).alias("existing_key")
        )
    known = existing.select(
        pl.col("phone_e164", "external_id", "upload_id").cast(pl.Utf8),
        _extension_key(existing),
    )
    by_phone = known.group_by(PHONE_KEY).agg(pl.col("upload_id").min().alias("upload_by_phone"))
    by_id = known.drop_nulls("external_id").group_by("external_id").agg(pl.col("upload_id").min().alias("upload_by_id"))
    matched = (
        valid.with_columns(_extension_key(valid))
        .join(by_phone, on=PHONE_KEY, how="left", maintain_order="left")
        .join(by_id, on="external_id", how="left", maintain_order="left")
        .with_columns(
            pl.coalesce("upload_by_phone", "upload_by_id").alias("existing_upload"),
            pl.when(pl.col("upload_by_phone").is_not_null())
            .then(pl.lit("phone"))
            .when(pl.col("upload_by_id").is_not_null())
            .then(pl.lit("external_id"))
            .alias("existing_key"),
        )
        .drop("upload_by_phone", "upload_by_id", "_extension")
    )
    return matched.filter(pl.col("existing_key").is_null()).select(valid.columns), matched.filter(
        pl.col("existing_key").is_not_null()
    )


def _group_duplicates(rows: pl.DataFrame) -> pl.DataFrame:
    """Add `duplicate_of`: the lowest row_number among rows linked by phone or external_id, transitively, and
    `first_with_phone` / `first_with_id`: the earliest row sharing this row's phone / external_id.

    Label propagation over those integer keys: each pass spreads the smallest row number one hop and it stops
    when nothing changes (one or two passes on real files)."""
    ordered = rows if rows.get_column("row_number").is_sorted() else rows.sort("row_number")
    frame = ordered.with_columns(_extension_key(ordered)).with_columns(
        pl.col("row_number").min().over(PHONE_KEY).alias("first_with_phone"),
        pl.when(pl.col("external_id").is_not_null())
        .then(pl.col("row_number").min().over("external_id"))
        .alias("first_with_id"),
    )
    frame = frame.with_columns(pl.min_horizontal("first_with_phone", "first_with_id").alias(GROUP))
    while True:
        spread = frame.with_columns(
            pl.min_horizontal(
                pl.col(GROUP).min().over("first_with_phone"),
                pl.when(pl.col("first_with_id").is_not_null()).then(pl.col(GROUP).min().over("first_with_id")),
            ).alias(GROUP)
        )
        if spread.get_column(GROUP).equals(frame.get_column(GROUP)):
            return frame.drop("_extension")
        frame = spread


def _with_links(grouped: pl.DataFrame) -> pl.DataFrame:
    """Add `linked_by` (phone | external_id) and `same_as`: the earliest row sharing that key with this one.

    A row tied to its group only through later rows (same phone as row 6, which shares an external_id with
    row 3) has no earlier twin: `same_as` stays null and the message names the group's first row instead."""
    earlier_phone = pl.col("first_with_phone") < pl.col("row_number")
    earlier_id = pl.col("first_with_id") < pl.col("row_number")
    return grouped.with_columns(
        pl.when(earlier_phone)
        .then(pl.lit("phone"))
        .when(earlier_id)
        .then(pl.lit("external_id"))
        .when(pl.len().over("first_with_phone") > 1)
        .then(pl.lit("phone"))
        .otherwise(pl.lit("external_id"))
        .alias("linked_by"),
        pl.when(earlier_phone)
        .then(pl.col("first_with_phone"))
        .when(earlier_id)
        .then(pl.col("first_with_id"))
        .alias("same_as"),
    ).drop("first_with_phone", "first_with_id")


def _reason() -> pl.Expr:
    return (
        pl.when(pl.col("same_as").is_null())
        .then(
            pl.lit("linked to row ")
            + pl.col(GROUP).cast(pl.Utf8)
            + pl.lit(" through rows sharing its phone or external_id")
        )
        .otherwise(pl.lit("same ") + pl.col("linked_by") + pl.lit(" as row ") + pl.col("same_as").cast(pl.Utf8))
    )


def _nonempty(name: str, dtype: pl.DataType) -> pl.Expr:
    present = pl.col(name).is_not_null()
    if name == "consent":
        return present & (pl.col(name) != "unknown")
    if dtype == pl.Utf8:
        return present & (pl.col(name).str.strip_chars() != "")
    if isinstance(dtype, pl.List):
        return present & (pl.col(name).list.len() > 0)
    return present


def _expand_custom_fields(rows: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """custom_fields JSON -> one `custom.<key>` column per key, in each value's own JSON type."""
    lines = rows.get_column("custom_fields").fill_null("{}").str.join("\n").item()
    decoded = pl.read_ndjson(io.BytesIO(lines.encode()), infer_schema_length=None)
    decoded = decoded.rename({key: CUSTOM_PREFIX + key for key in decoded.columns})
    return pl.concat([rows, decoded], how="horizontal"), decoded.columns


def _merge(grouped: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fold each group into its first row; (merged rows, conflicts)."""
    expanded, custom_columns = _expand_custom_fields(grouped)
    member_of = {member: lead for lead, members in MERGE_UNITS.items() for member in members}
    independent = [
        c
        for c in [*grouped.columns, *custom_columns]
        if c not in member_of and c != GROUP and c not in _NOT_MERGED_AS_VALUES
    ]
    units = {**MERGE_UNITS, **{name: (name,) for name in independent}}
    winner = {lead: f"winner:{lead}" for lead in units}
    with_winners = expanded.with_columns(
        pl.col("row_number")
        .filter(_nonempty(lead, expanded.schema[lead]))
        .first()
        .over(GROUP)
        .fill_null(pl.col(GROUP))
        .alias(winner[lead])
        for lead in units
    )
    merged = (
        with_winners.group_by(GROUP, maintain_order=True)
        .agg(
            pl.col(member).filter(pl.col("row_number") == pl.col(winner[lead])).first()
            for lead, members in units.items()
            for member in members
        )
        .rename({GROUP: "row_number"})
    )
    if custom_columns:
        custom = pl.struct(pl.col(c).alias(c[len(CUSTOM_PREFIX) :]) for c in custom_columns).struct.json_encode()
        merged = merged.with_columns(custom.alias("custom_fields"))
    else:
        merged = merged.with_columns(pl.lit("{}").alias("custom_fields"))
    conflicts = pl.concat(
        [
            with_winners.filter(
                _nonempty(lead, expanded.schema[lead])
                & (
                    pl.col(lead)
                    != pl.col(lead).filter(pl.col("row_number") == pl.col(winner[lead])).first().over(GROUP)
                )
            ).select(
                pl.col(GROUP).alias("row_number"),
                pl.lit(lead).alias("field"),
                pl.col(winner[lead]).alias("kept_row"),
                pl.col("row_number").alias("other_row"),
            )
            for lead in units
        ]
    )
    return merged.select(grouped.drop(GROUP).columns), conflicts.cast(CONFLICT_SCHEMA).sort("row_number", "other_row")


def _revoked(rows: pl.DataFrame) -> pl.Expr:
    return (pl.col("consent") == "no").fill_null(False) if "consent" in rows.columns else pl.lit(False)


def _with_revocations(kept: pl.DataFrame, grouped: pl.DataFrame) -> pl.DataFrame:
    """The kept row of every group holding a "no" takes the consent evidence of the group's latest "no"."""
    if "consent" not in grouped.columns:
        return kept
    unit = [c for c in MERGE_UNITS["consent"] if c in grouped.columns]
    latest_no = (
        grouped.filter(_revoked(grouped))
        .sort("row_number")
        .group_by(GROUP, maintain_order=True)
        .agg(pl.col(c).last().alias(f"revoked:{c}") for c in unit)
        .rename({GROUP: "row_number"})
    )
    if latest_no.is_empty():
        return kept
    return (
        kept.join(latest_no, on="row_number", how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("revoked:consent").is_not_null()).then(pl.col(f"revoked:{c}")).otherwise(pl.col(c)).alias(c)
            for c in unit
        )
        .select(kept.columns)
    )


def apply_duplicate_policy(
    valid: pl.DataFrame,
    *,
    policy: str,
    existing: pl.DataFrame | None = None,
    source_columns: dict[str, str] | None = None,
) -> DuplicateResult:
    """Apply a campaign's duplicate policy to validated rows. `existing` (phone_e164, phone_extension,
    external_id, upload_id; without phone_extension every contact is a main line) lists the campaign's contacts; `source_columns` (field -> source column) fills the problems' `column`."""
    if policy not in DUPLICATE_POLICIES:
        raise ConfigError(f"unknown duplicate policy {policy!r}: use one of {', '.join(DUPLICATE_POLICIES)}")
    source_columns = source_columns or {}
    fresh, already = _split_existing(valid, existing)
    # a "no" for a contact already in the campaign is not a duplicate: it revokes (latest row per phone)
    revoking = (
        already.filter(_revoked(already))
        .with_columns(_extension_key(already))
        .unique(PHONE_KEY, keep="last", maintain_order=True)
        .drop("_extension")
    )
    already = already.filter(~pl.col("row_number").is_in(revoking.get_column("row_number").implode()))
    existing_lines = _problem_lines(
        already,
        pl.col("existing_key"),
        pl.lit("already in this campaign (upload ") + pl.col("existing_upload") + pl.lit(")"),
        source_columns,
    )
    grouped = _with_links(_group_duplicates(fresh))
    firsts = grouped.filter(pl.col("row_number") == pl.col(GROUP))
    extras = grouped.filter(pl.col("row_number") != pl.col(GROUP))
    messages = {
        "suppress": _reason(),
        "merge": pl.lit("merged into row ") + pl.col(GROUP).cast(pl.Utf8),
        "split": pl.lit("split to duplicates file"),
    }
    in_file_lines = _problem_lines(extras, pl.col("linked_by"), messages[policy], source_columns)
    grouped = grouped.drop("linked_by", "same_as")
    kept = firsts.select(valid.columns)
    conflicts = pl.DataFrame(schema=CONFLICT_SCHEMA)
    if policy == "merge" and not extras.is_empty():
        in_groups = grouped.filter(pl.len().over(GROUP) > 1)
        merged, conflicts = _merge(in_groups)
        kept = pl.concat([grouped.filter(pl.len().over(GROUP) == 1).select(valid.columns), merged]).sort("row_number")
    kept = _with_revocations(kept, grouped)
    if revoking.height:
        kept = pl.concat([kept, revoking.select(valid.columns)]).sort("row_number")
    return DuplicateResult(
        kept=kept,
        problems=pl.concat([empty_problems(), existing_lines, in_file_lines]).sort("row_number", maintain_order=True),
        split_rows=extras.select(valid.columns) if policy == "split" else valid.clear(),
        conflicts=conflicts,
        skipped_existing=already.height,
    )

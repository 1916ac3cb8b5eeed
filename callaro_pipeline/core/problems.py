"""The problems validation reports: their codes, the problem lines' schema, and a check as a condition with its code."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from callaro_pipeline.core import schema

PROBLEM_CODES = {
    "missing_required": "a required value is empty: the phone, or all of first_name, last_name, full_name and "
    "external_id (field `name`)",
    "invalid_phone": "the phone cannot be read as a valid number for its country or the default region "
    "(including spreadsheet damage such as 4.15556E+09)",
    "invalid_email": "the e-mail address is not syntactically valid (no network lookup is made)",
    "invalid_consent": "consent is not one of yes/no/unknown or a recognized synonym (y, true, 1, opt-in, ja, sí, "
    "oui / n, false, 0, opt-out, nein, non), or its consent_date is not a real date (n/a, unknown, 2026-02-30) or "
    "lies in the future",
    "invalid_custom_field": "a custom-field value does not fit the type declared in custom_fields.yaml",
    "duplicate": "the row repeats the phone or external_id of an earlier row or of a contact already in the "
    "campaign (handled by the campaign's duplicate policy)",
    "malformed_row": "the reader could not split the line into the header's columns (e.g. an unclosed quote)",
    "value_too_long": "a value is longer than its field allows (see FIELD_MAX_LENGTHS; custom fields "
    "CUSTOM_FIELD_MAX_LENGTH); the report shows its first 80 characters",
    "garbled_text": 'the text looks double-encoded (UTF-8 read as Windows-1252, e.g. "J\u00c3\u00bcrgen" for '
    '"J\u00fcrgen"): re-export the file as UTF-8',
}
FIELD_MAX_LENGTHS = schema.FIELD_MAX_LENGTHS
PROBLEM_SCHEMA = pl.Schema(
    {
        "row_number": pl.Int64,
        "column": pl.Utf8,
        "field": pl.Utf8,
        "code": pl.Utf8,
        "message": pl.Utf8,
        "value": pl.Utf8,
    }
)


@dataclass(frozen=True)
class Check:
    """Rows where `failed` holds get one problem line."""

    field: str
    code: str
    failed: pl.Expr
    message: pl.Expr
    value: pl.Expr


def empty_problems() -> pl.DataFrame:
    return pl.DataFrame(schema=PROBLEM_SCHEMA)


def cut_text(text: pl.Expr, limit: int) -> pl.Expr:
    """Text cut to `limit` characters with an ellipsis, so no report line or message carries a huge value."""
    return pl.when(text.str.len_chars() > limit).then(text.str.slice(0, limit) + "\u2026").otherwise(text)

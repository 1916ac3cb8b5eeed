"""Applying a mapping to a table: standard fields renamed, custom fields typed and packed as JSON, invisible
characters stripped."""

from __future__ import annotations

import json

import polars as pl

from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.errors import MappingError
from callaro_pipeline.core.header_matching import alias_table, exact_alias_matches
from callaro_pipeline.core.mapping import (
    CUSTOM_PREFIX,
    Mapping,
    is_custom_target,
    normalize_header,
    phone_columns,
    source_columns,
)
from callaro_pipeline.core.mapping_files import check_mapping_target
from callaro_pipeline.core.schema import STANDARD_FIELDS

# Spreadsheet vocabulary for yes/no cells, shared by boolean custom fields and consent.
TRUE_WORDS = ("yes", "y", "true", "t", "1", "ja", "j", "si", "sí", "oui")
FALSE_WORDS = ("no", "n", "false", "f", "0", "nein", "non")


# Bidi controls (U+200E/F, U+202A-202E, U+2066-2069, U+061C) reorder what a reader sees ("evil\u202egnp.exe"):
# stripped from every stored value. Zero-width space, word joiner and BOM mean nothing in a value: removed too.
# Zero-width (non-)joiners shape Indic, Arabic and emoji text: kept inside a value, stripped at its ends.
INVISIBLE_CHARS = "[\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\u061c\ufeff]"
_EDGE_JOINERS = "\u200c\u200d"


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    """Trimmed text without invisible characters; null when nothing visible is left (a name made only of
    zero-width or bidi characters is a missing name)."""
    text = (
        expr.cast(pl.Utf8)
        .str.replace_all(INVISIBLE_CHARS, "")
        .str.strip_chars()
        .str.strip_chars(_EDGE_JOINERS)
        .str.strip_chars()
    )
    return pl.when(text == "").then(None).otherwise(text)


def typed_custom_value(text: pl.Expr, field_type: str) -> pl.Expr:
    """The value of a custom-field cell in its declared type, or null when it does not fit (or is blank).

    Applying it to its own output as text gives the same value, so validation can re-check stored JSON.
    Each conversion is one chain of string operations: eager polars does not share repeated subexpressions."""
    if field_type == "integer":
        return text.str.extract(r"^([+-]?\d+)(?:\.0+)?$", 1).cast(pl.Int64, strict=False)
    if field_type == "number":
        number = (
            text.str.replace_all(r"^[$€£]\s*|\s*[$€£]$", "")
            # a decimal comma is one not followed by exactly three digits ("12,5"); the others group thousands
            .str.replace(r"^([+-]?\d+),(\d{1,2}|\d{4,})$", "${1}.${2}")
            .str.replace_all(r",(\d{3})\b", "${1}")
            .str.extract(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$", 1)
            .cast(pl.Float64, strict=False)
        )
        return number.replace([float("inf"), float("-inf")], None)
    if field_type == "boolean":
        words = dict.fromkeys(TRUE_WORDS, True) | dict.fromkeys(FALSE_WORDS, False)
        return text.str.to_lowercase().replace_strict(words, default=None, return_dtype=pl.Boolean)
    if field_type == "date":
        iso_date = r"^(\d{4}-\d{2}-\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
        return text.str.extract(iso_date, 1).str.to_date("%Y-%m-%d", strict=False)
    return text


def _json_string(expr: pl.Expr) -> pl.Expr:
    """A text expression as a JSON string literal (or `null`), escaped by polars' own encoder."""
    return pl.struct(expr.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")


def _custom_json_value(text: pl.Expr, field_type: str) -> pl.Expr:
    """JSON for one cell: the typed value when it fits its type, else the original text (validation flags it)."""
    if field_type == "string":
        return _json_string(text)
    typed = typed_custom_value(text, field_type)
    literal = _json_string(typed.cast(pl.Utf8)) if field_type == "date" else typed.cast(pl.Utf8)
    return pl.when(typed.is_not_null()).then(literal).otherwise(_json_string(text))


def custom_fields_json(custom: dict[str, tuple[str, str]]) -> pl.Expr:
    """`{name: (source column, type)}` -> one JSON object per row (`{}` when no custom field is mapped)."""
    parts: list[pl.Expr] = []
    for name, (column, field_type) in custom.items():
        separator = "{" if not parts else ","
        parts += [
            pl.lit(f"{separator}{json.dumps(name)}:"),
            _custom_json_value(_blank_to_null(pl.col(column)), field_type),
        ]
    if not parts:
        return pl.lit("{}").alias("custom_fields")
    return pl.concat_str([*parts, pl.lit("}")]).alias("custom_fields")


def apply_mapping(rows: pl.DataFrame, mapping: Mapping, registry: dict[str, CustomField]) -> pl.DataFrame:
    """Source rows -> row_number, every standard field as trimmed text (null when blank or not mapped), and
    custom_fields as a JSON object string. Rows without a row_number column are numbered from 2 (header = 1)."""
    missing = [column for column in mapping.fields if column not in rows.columns]
    if missing:
        raise MappingError(f"mapped column(s) not in the file: {', '.join(repr(c) for c in missing)}")
    for column, target in mapping.fields.items():
        check_mapping_target(target, column, registry)
    by_field = source_columns(mapping)
    if "row_number" not in rows.columns:
        rows = rows.with_row_index("row_number", offset=2)
    standard = [
        (_blank_to_null(pl.col(by_field[name])) if name in by_field else pl.lit(None, pl.Utf8)).alias(name)
        for name in STANDARD_FIELDS
    ]
    custom = {
        target[len(CUSTOM_PREFIX) :]: (column, registry[target[len(CUSTOM_PREFIX) :]].type)
        for target, column in by_field.items()
        if is_custom_target(target)
    }
    alternates = phone_columns(mapping)[1:]
    extra = []
    if alternates:  # the other phone columns' values, in priority order (validation picks the first valid)
        extra.append(
            pl.concat_list([_blank_to_null(pl.col(column)) for column in alternates])
            .list.drop_nulls()
            .alias("phone_alternates")
        )
    return rows.select(pl.col("row_number").cast(pl.Int64), *standard, custom_fields_json(custom), *extra)


def standard_field_for_header(column: str) -> str | None:
    matches = exact_alias_matches(normalize_header(column), alias_table({}))
    return min(matches)[2] if matches else None

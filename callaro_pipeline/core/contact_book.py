"""The contact book, the pure rules: contact ids computed without a connection, the upload rows the book takes
(one per phone and extension, text trimmed as DuckDB trims it), which fields merge as a group, and the checks
on a `--where` condition's values. Polars frames and plain values in and out; the SQL is storage.contact_book
(manual changes, undo) and storage.contact_book_merge (uploads into the book).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl

from callaro_pipeline.core import schema
from callaro_pipeline.core.errors import ConfigError

# From the field registry. Values that only make sense together (the duplicate merge units but the phone's,
# whose lead is the key): the group is taken from the upload that has its key field.
FIELD_GROUPS = {lead: members for lead, members in schema.merge_units().items() if lead not in schema.CONTACT_KEY}
_GROUPED = {name for members in FIELD_GROUPS.values() for name in members}
# Values that each stand on their own: the latest non-empty one wins.
SINGLE_FIELDS = tuple(
    f.name
    for f in schema.fields(table="validated_contacts", type="text")
    if f.in_book and f.name not in _GROUPED and f.name != schema.CONTACT_KEY[0]  # the phone: the key itself
)
INCOMING_SCHEMA: dict[str, pl.DataType] = {
    f.name: schema.polars_dtype(f) for f in schema.fields(table="validated_contacts")
}
_TEXT_FIELDS = schema.names(schema.fields(table="validated_contacts", type="text"))
VALUELESS_OPERATORS = ("is_null", "not_null")
LIST_OPERATORS = ("in", "not in")

# A `(field, operator, value)` triple, or an object with those attributes (segments.parse_where's Condition).
Condition = Any


def contact_id_for(phone_e164: str, extension: str | None = None) -> str:
    """The same id computed in Python, for callers without a connection (e.g. call results tying back)."""
    ext = (extension or "").strip()
    key = f"{phone_e164};ext={ext}" if ext else phone_e164
    return "c_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def as_utc_naive(moment: datetime) -> datetime:
    """Warehouse TIMESTAMP columns hold naive UTC; an aware value would be shifted by the session time zone."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


# --- uploads into the book ---------------------------------------------------------------------------------


def _aligned(contacts: pl.DataFrame) -> pl.DataFrame:
    """The upload's columns the book takes, in a fixed order and type; absent optional columns are null."""
    return contacts.select(
        [
            pl.col(name).cast(dtype) if name in contacts.columns else pl.lit(None, dtype).alias(name)
            for name, dtype in INCOMING_SCHEMA.items()
        ]
    )


# What DuckDB's trim() removes: the Unicode space separators (category Zs), not tabs or line breaks.
_SPACE_SEPARATORS = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"


def incoming_rows(contacts: pl.DataFrame) -> pl.DataFrame:
    """One row per phone and extension (its first row in the upload), text trimmed as DuckDB's trim() does,
    empty -> null."""
    rows = _aligned(contacts)
    # Column by column, and a column is replaced only when trimming changes it: cleaning every column at once
    # held a second copy of a million rows of text at the memory peak. Each step below likewise.
    for name in _TEXT_FIELDS:
        text = rows.get_column(name)
        trimmed = text.str.strip_chars(_SPACE_SEPARATORS)
        cleaned = trimmed.set(trimmed == "", None)
        if not cleaned.equals(text, check_names=False, null_equal=True):
            rows = rows.with_columns(cleaned.alias(name))
    rows = rows.filter(pl.col("phone_e164").is_not_null())
    if not rows.get_column("row_number").is_sorted():
        rows = rows.sort("row_number", maintain_order=True)
    key = ["phone_e164", "phone_extension"]
    if rows.select(key).n_unique() < rows.height:
        rows = rows.unique(subset=key, keep="first", maintain_order=True)
    return rows


# --- conditions of manual changes -------------------------------------------------------------------------


def value_params(operator: str, value: Any) -> list[Any]:
    if operator in VALUELESS_OPERATORS:
        return []
    if operator in LIST_OPERATORS:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, Sequence) or not items:
            raise ConfigError(f"{operator!r} needs a non-empty list of values")
        return [[str(item).strip() for item in items]]
    if value is None:
        raise ConfigError(f"{operator!r} needs a value (use is_null / not_null for empty fields)")
    return [str(value)]


def condition_triple(condition: Condition) -> tuple[str, str, Any]:
    if hasattr(condition, "operator"):
        return condition.field, condition.operator, condition.value
    field, operator, value = condition
    return field, operator, value


def condition_summary(conditions: Sequence[Condition]) -> list[list[str]]:
    """Field names and operators only: values may be personal data."""
    return [[field, operator] for field, operator, _ in map(condition_triple, conditions)]

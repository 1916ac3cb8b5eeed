"""Masking of personal data before it reaches logs, Dagster events or metadata."""

from __future__ import annotations

import polars as pl


def mask_phone(value: str | None) -> str:
    """`+14155550171` -> `+1415*****71`: keep the country/area prefix and the last two digits."""
    if not value:
        return ""
    text = str(value)
    if len(text) <= 6:
        return "*" * len(text)
    return text[:5] + "*" * (len(text) - 7) + text[-2:]


def mask_email(value: str | None) -> str:
    if not value:
        return ""
    local, _, domain = str(value).partition("@")
    return (local[:1] + "***@" + domain) if domain else mask_text(value)


def mask_text(value: str | None) -> str:
    """Names and free text: first character, then stars."""
    if not value:
        return ""
    text = str(value)
    return text[:1] + "*" * min(len(text) - 1, 6)


def mask_phone_expr(column: str) -> pl.Expr:
    col = pl.col(column).cast(pl.Utf8)
    return (
        pl.when(col.str.len_chars() > 6)
        .then(col.str.slice(0, 5) + pl.lit("*****") + col.str.slice(-2))
        .otherwise(pl.lit("***"))
        .alias(column)
    )


def mask_text_expr(column: str) -> pl.Expr:
    col = pl.col(column).cast(pl.Utf8)
    return pl.when(col.is_null() | (col == "")).then(pl.lit("")).otherwise(col.str.slice(0, 1) + "***").alias(column)


def mask_email_expr(column: str) -> pl.Expr:
    col = pl.col(column).cast(pl.Utf8)
    return (
        pl.when(col.str.contains("@"))
        .then(col.str.slice(0, 1) + pl.lit("***@") + col.str.split("@").list.last())
        .otherwise(pl.when(col.is_null()).then(pl.lit("")).otherwise(col.str.slice(0, 1) + "***"))
        .alias(column)
    )


PII_FIELDS_PHONE = ("phone", "phone_e164", "phone_raw")
PII_FIELDS_EMAIL = ("email",)
PII_FIELDS_TEXT = ("first_name", "last_name", "full_name")


def mask_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Mask every PII column a frame may carry, for previews shown in the UI or logs."""
    exprs = []
    for name in df.columns:
        if name in PII_FIELDS_PHONE:
            exprs.append(mask_phone_expr(name))
        elif name in PII_FIELDS_EMAIL:
            exprs.append(mask_email_expr(name))
        elif name in PII_FIELDS_TEXT:
            exprs.append(mask_text_expr(name))
    return df.with_columns(exprs) if exprs else df

"""Masking of personal data before it reaches logs, Dagster events or metadata."""

from __future__ import annotations

import errno
import os
import traceback
from dataclasses import dataclass
from typing import Any

import polars as pl

from callaro_pipeline.core import schema
from callaro_pipeline.core.errors import CallaroError


def mask_phone(value: str | None) -> str:
    """`+14155550171` -> `+1415*****71`: keep the country/area prefix and the last two digits."""
    if not value:
        return ""
    text = str(value)
    if len(text) <= 6:
        return "*" * len(text)
    return text[:5] + "*" * (len(text) - 7) + text[-2:]


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


# The registry's PII text fields by kind, and the reader's raw phone column.
PII_FIELDS_PHONE = (*schema.pii_fields("phone"), "phone_raw")
PII_FIELDS_EMAIL = schema.pii_fields("email")
PII_FIELDS_TEXT = schema.pii_fields("name")


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


# --- errors that may quote personal data ---------------------------------------------------------------------
# Pure wording: the Dagster layer (`callaro_pipeline.defs.failures.withhold_error_details`) turns it into a
# `dagster.Failure`; this module imports no Dagster.

DEBUG_VARIABLE = "CALLARO_DEBUG"
_PROJECT_PACKAGE = "callaro_pipeline"

# File-system failures worded in the run's failure (their text holds a path and the system's reason only).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})

WRITE_REASONS = ("No space left on device", "Read-only file system", "Permission denied", "Disk quota exceeded")


@dataclass(frozen=True)
class WithheldFailure:
    """What a step failure may say about an error: a description without cell values, and its metadata."""

    description: str
    metadata: dict[str, Any]


def withheld_failure(
    error: Exception, where: str, worded: tuple[type[BaseException], ...] = ()
) -> WithheldFailure | None:
    """The failure to report instead of `error` raised in `where`, or None when `error` may pass unchanged:
    errors worded without values (CallaroError, and the `worded` types the caller adds: Dagster's own,
    WarehouseBusy), or any error with CALLARO_DEBUG=1 (a developer on a private copy of the data).

    DuckDB, polars and Python messages quote the offending value or line (`Could not convert string '(415)
    867-5309' ...`), and Dagster stores failure messages in the run's event log, so they never get there.
    """
    if isinstance(error, (CallaroError, *worded)) or os.environ.get(DEBUG_VARIABLE) == "1":
        return None
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        # a full disk or a read-only home: the system's reason and the file's name, never a cell value
        name = f" {os.path.basename(str(error.filename))!r}" if error.filename else ""
        return WithheldFailure(
            f"{where} could not write{name}: {error.strerror or 'write failed'}",
            {"error_type": type(error).__name__, "errno": int(error.errno or 0)},
        )
    reason = next((text for text in WRITE_REASONS if text in str(error)), None)
    if reason and type(error).__module__.startswith(("duckdb", "_duckdb")):
        # DuckDB's own write failure: the system's reason in fixed words, the message itself not echoed
        return WithheldFailure(f"{where} could not write the warehouse: {reason}", {"error_type": type(error).__name__})
    return WithheldFailure(
        withheld_error_text(error, where), {"error_type": type(error).__name__, "message_withheld": True}
    )


def withheld_error_text(error: BaseException, where: str) -> str:
    """`where` failed with the error's type, then the project's code lines it came through (source text only,
    no values); the message itself is left out."""
    frames = [
        f"  {frame.filename.rsplit(_PROJECT_PACKAGE + os.sep, 1)[-1]}:{frame.lineno} in {frame.name}: "
        f"{(frame.line or '').strip()}"
        for frame in traceback.extract_tb(error.__traceback__)
        if _PROJECT_PACKAGE + os.sep in frame.filename
    ]
    return "\n".join(
        [
            f"{where} failed with {type(error).__module__}.{type(error).__name__}; its message is withheld because "
            f"it may quote personal data (run again with {DEBUG_VARIABLE}=1 on a private machine to see it)",
            *frames[-8:],
        ]
    )

"""Masking of personal data before it reaches logs, Dagster events or metadata."""

from __future__ import annotations

import errno
import functools
import inspect
import os
import traceback
from collections.abc import Callable
from typing import Any

import polars as pl

from callaro_pipeline import schema


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

DEBUG_VARIABLE = "CALLARO_DEBUG"
_PROJECT_PACKAGE = "callaro_pipeline"


def withhold_error_details(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate an asset or asset-check body: an unexpected error becomes a `dagster.Failure` that names the
    error type and the code lines it passed through, but not its message.

    DuckDB, polars and Python messages quote the offending value or line (`Could not convert string '(415)
    867-5309' ...`), and Dagster stores failure messages in the run's event log, so they never get there.
    Failures worded without values (`dagster.Failure`, CallaroError, WarehouseBusy) and Dagster's own errors
    pass unchanged. With CALLARO_DEBUG=1
    the original error is raised instead, for a developer on a private copy of the data.
    """

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:
                _reraise_without_details(error, fn.__name__)

        return generator_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            _reraise_without_details(error, fn.__name__)

    return wrapper


# File-system failures worded in the run's failure (their text holds a path and the system's reason only).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})

WRITE_REASONS = ("No space left on device", "Read-only file system", "Permission denied", "Disk quota exceeded")


def _reraise_without_details(error: Exception, where: str) -> None:
    import dagster as dg
    from dagster._core.errors import DagsterError

    from callaro_pipeline.errors import CallaroError
    from callaro_pipeline.warehouse import WarehouseBusy

    worded_by_us = (dg.Failure, dg.RetryRequested, DagsterError, CallaroError, WarehouseBusy)
    if isinstance(error, worded_by_us) or os.environ.get(DEBUG_VARIABLE) == "1":
        raise error
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        # a full disk or a read-only home: the system's reason and the file's name, never a cell value
        name = f" {os.path.basename(str(error.filename))!r}" if error.filename else ""
        raise dg.Failure(
            description=f"{where} could not write{name}: {error.strerror or 'write failed'}",
            metadata={"error_type": type(error).__name__, "errno": int(error.errno or 0)},
            allow_retries=False,
        ) from None
    reason = next((text for text in WRITE_REASONS if text in str(error)), None)
    if reason and type(error).__module__.startswith(("duckdb", "_duckdb")):
        # DuckDB's own write failure: the system's reason in fixed words, the message itself not echoed
        raise dg.Failure(
            description=f"{where} could not write the warehouse: {reason}",
            metadata={"error_type": type(error).__name__},
            allow_retries=False,
        ) from None
    raise dg.Failure(
        description=withheld_error_text(error, where),
        metadata={"error_type": type(error).__name__, "message_withheld": True},
        allow_retries=False,
    ) from None


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

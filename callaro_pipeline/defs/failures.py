"""Step failures that never quote personal data: the Dagster side of `privacy.withheld_failure`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import dagster as dg

from callaro_pipeline.core.privacy import withheld_failure
from callaro_pipeline.storage.warehouse import WarehouseBusy

# Errors worded without values, passed unchanged: Dagster's own errors, a Failure or RetryRequested raised on
# purpose, and the warehouse's busy error (CallaroError is known to `withheld_failure` itself).
_WORDED = (dg.Failure, dg.RetryRequested, dg.DagsterError, WarehouseBusy)


def withhold_error_details(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate an asset or asset-check body: an unexpected error becomes a `dagster.Failure` that names the
    error type and the code lines it passed through, but not its message (`privacy.withheld_failure`).
    Failures worded without values (`dagster.Failure`, CallaroError, WarehouseBusy) and Dagster's own errors
    pass unchanged; with CALLARO_DEBUG=1 the original error is raised instead."""

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


def _reraise_without_details(error: Exception, where: str) -> None:
    failure = withheld_failure(error, where, _WORDED)
    if failure is None:
        raise error
    raise dg.Failure(description=failure.description, metadata=failure.metadata, allow_retries=False) from None

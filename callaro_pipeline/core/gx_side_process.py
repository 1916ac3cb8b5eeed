"""Great Expectations in a side process: imported and built on the other core while this one reads the upload,
with a fallback to GX in this process."""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


from callaro_pipeline.core.gates import GxOutcome
from callaro_pipeline.core.gx_suite import gx_runner, validate_upload_summary

# Importing GX and building its context is ~5 s of single-threaded Python, paid by every `callaro import` (a new
# process). Started in a second process when the command starts, it is paid on the other core while this one
# imports Dagster and reads the upload. Anything going wrong there falls back to GX in this process.
# Measured 2026-12-02 (`callaro import`, 2 and 100k rows, fresh process): the gate waited 0.3-1.0 s for GX with
# the side process, 6-13 s with GX imported here on first use; `import great_expectations` alone is ~7.3 s.

_side_process: GxSideProcess | None = None


class GxSideProcess:
    """A Python process of its own that imports GX at once, then validates the summaries it is sent (pickled on
    its stdin, answered on its stdout). A fresh interpreter rather than multiprocessing: nothing of the caller's
    main module is run again in it, and none of Dagster's or DuckDB's threads is forked."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
            [sys.executable, "-c", "from callaro_pipeline.core.gx_side_process import serve_gx; serve_gx()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # its failures are met again, and reported, by the gate in this process
        )

    def validate(
        self, summary: dict[str, list[Any]], parameters: dict[str, Any], docs_dir: Path, run_name: str
    ) -> GxOutcome | None:
        """The outcome, or None if the side process is gone or failed (the caller then validates here)."""
        requests, answers = self._process.stdin, self._process.stdout
        assert requests is not None and answers is not None  # noqa: S101 - both are pipes (see __init__)
        try:
            pickle.dump((summary, parameters, docs_dir, run_name), requests)
            requests.flush()
            outcome = pickle.load(answers)  # noqa: S301 - our own child's answer
        except (EOFError, OSError, pickle.UnpicklingError):
            return None
        return outcome if isinstance(outcome, GxOutcome) else None

    def close(self) -> None:
        """End of input ends the process once it is idle; one still importing GX is stopped."""
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def serve_gx() -> None:
    """The side process's main loop (see GxSideProcess)."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the answers
    with contextlib.suppress(Exception):
        gx_runner()
    while True:
        try:
            request = pickle.load(sys.stdin.buffer)  # noqa: S301 - sent by the parent process
        except (EOFError, OSError):
            # Every answer is sent and every Data Docs file written: skip the seconds of tearing GX down.
            os._exit(0)
        try:
            outcome: GxOutcome | None = validate_upload_summary(*request)
        except Exception:  # noqa: BLE001 - the parent validates again in its own process and reports the error
            outcome = None
        pickle.dump(outcome, answers)
        answers.flush()


@contextlib.contextmanager
def great_expectations_in_side_process() -> Iterator[None]:
    """Within the block, the GX gate validates in a side process started now (unless GX is already loaded
    here: a long-lived process pays the import once)."""
    global _side_process
    if _side_process is not None or "great_expectations" in sys.modules:
        yield
        return
    _side_process = GxSideProcess()
    try:
        yield
    finally:
        side, _side_process = _side_process, None
        side.close()


def _validate_in_side_process(
    summary: dict[str, list[Any]], parameters: dict[str, Any], docs_dir: Path, run_name: str
) -> GxOutcome | None:
    return None if _side_process is None else _side_process.validate(summary, parameters, docs_dir, run_name)

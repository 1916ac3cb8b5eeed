"""Great Expectations in a side process: imported and built on the other core while this one reads the upload,
with a fallback to GX in this process."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from callaro_pipeline.core.gates import GxOutcome
from callaro_pipeline.core.gx_suite import gx_runner, validate_upload_summary

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# Importing GX and building its context is ~5 s of single-threaded Python, paid by every `callaro import` (a new
# process). Started in a second process when the command starts, it is paid on the other core while this one
# imports Dagster and reads the upload. Anything going wrong there falls back to GX in this process.
# Measured 2026-12-02 (`callaro import`, 2 and 100k rows, fresh process): the gate waited 0.3-1.0 s for GX with
# the side process, 6-13 s with GX imported here on first use; `import great_expectations` alone is ~7.3 s.
# "spawn", never "fork": Dagster and DuckDB have threads. A spawned child runs the parent's main script again
# (as `__mp_main__`): `callaro_pipeline.cli` imports nothing heavy for that (see its `__init__`).
# The worker is killed at the end rather than left to exit: it has nothing left to do, and a Python exit with
# GX loaded took 1.3 s (a worker still importing GX would have held the command until the import ended).

_side_process: GxSideProcess | None = None


class GxSideProcess:
    """A pool of one spawned worker that imports GX and builds its runner at once, then validates summaries."""

    def __init__(self) -> None:
        others = set(multiprocessing.active_children())
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=start_worker)
        self.pool.submit(int)  # a pool starts its worker with its first task: now
        self.workers = set(multiprocessing.active_children()) - others

    def validate(
        self, summary: dict[str, list[Any]], parameters: dict[str, Any], docs_dir: Path, run_name: str
    ) -> GxOutcome | None:
        """The outcome, or None if the worker is gone or failed (the caller then validates here)."""
        try:
            return self.pool.submit(validate_upload_summary, summary, parameters, docs_dir, run_name).result()
        except Exception:  # noqa: BLE001 - a broken pool or GX failing there: GX here meets and reports it again
            return None

    def close(self) -> None:
        """Quick: queued tasks are dropped and the worker (idle, or still importing GX) is ended, not waited for."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        for worker in self.workers:
            worker.kill()
            worker.join()


def start_worker() -> None:
    """The worker's start: it ends when its parent does (a killed `callaro import` must not leave a worker with GX
    loaded behind: a pool's worker waits for tasks forever), then imports GX and builds the runner."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_after, args=(parent.sentinel,), daemon=True).start()
    gx_runner()


def _exit_after(parent_sentinel: int) -> None:
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(0)  # the parent is gone: nothing to clean up that the kernel does not


@contextlib.contextmanager
def great_expectations_in_side_process(side: GxSideProcess | None = None) -> Iterator[None]:
    """Within the block, the GX gate validates in `side` (closed at the end), by default a side process started
    now unless GX is already loaded here (a long-lived process pays the import once)."""
    global _side_process
    if side is None and (_side_process is not None or "great_expectations" in sys.modules):
        yield
        return
    _side_process = side or GxSideProcess()
    try:
        yield
    finally:
        ending, _side_process = _side_process, None
        ending.close()


def validate_in_side_process(
    summary: dict[str, list[Any]], parameters: dict[str, Any], docs_dir: Path, run_name: str
) -> GxOutcome | None:
    """The outcome from the side process of the block, or None outside one (or if it failed)."""
    return None if _side_process is None else _side_process.validate(summary, parameters, docs_dir, run_name)

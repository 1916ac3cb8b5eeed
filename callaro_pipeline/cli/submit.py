"""`callaro import --submit` and the state of a submitted upload: the run goes to the Dagster instance of
DAGSTER_HOME (Postgres-backed on several machines), whose run queue (`QueuedRunCoordinator`, `dagster-daemon run`)
starts it on a worker, instead of running in this process.

The run is created from the job as the daemon's code location (workspace.yaml: location `callaro_pipeline`) knows
it, so the queue's launcher finds it by location name; nothing here loads a second code location.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from callaro_pipeline.core.errors import CallaroError
from callaro_pipeline.core.project_paths import PROJECT_ROOT
from callaro_pipeline.defs.partitions import UPLOADS
from callaro_pipeline.defs.run_tags import upload_run_tags

# The code location of workspace.yaml: runs name it, the daemon's launcher looks it up by this name.
LOCATION_NAME = "callaro_pipeline"
DEFINITIONS_MODULE = "callaro_pipeline.definitions"
REPOSITORY_NAME = "__repository__"  # the one repository of a `Definitions` object
JOB_NAME = "import_upload"
QUEUED_COORDINATOR = "QueuedRunCoordinator"
# What `callaro report` shows for a submitted upload whose run has not ended yet.
WAITING = {"QUEUED": "queued", "NOT_STARTED": "queued", "STARTING": "running", "STARTED": "running"}
WAITING.update(CANCELING="running")


class NoRunQueue(CallaroError):
    """DAGSTER_HOME names no instance with a run queue: `--submit` would enqueue a run nobody starts (exit 2)."""


def queue_instance() -> dg.DagsterInstance:
    """The DAGSTER_HOME instance, if it queues runs for a daemon (QueuedRunCoordinator); else NoRunQueue."""
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if not home or not (Path(home) / "dagster.yaml").is_file():
        raise NoRunQueue(
            "--submit needs DAGSTER_HOME naming a folder with a dagster.yaml whose run_coordinator is "
            "QueuedRunCoordinator (see README 'Several machines'); without --submit the import runs here"
        )
    try:
        with _quiet():
            instance = dg.DagsterInstance.from_config(home)
            coordinator = type(instance.run_coordinator).__name__
    except Exception as error:  # a broken dagster.yaml, an unreachable Postgres: one line, no traceback
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise NoRunQueue(f"--submit: the Dagster instance of DAGSTER_HOME cannot be opened: {first[:300]}") from None
    if coordinator != QUEUED_COORDINATOR:
        instance.dispose()
        raise NoRunQueue(
            f"--submit: the Dagster instance of DAGSTER_HOME has run_coordinator {coordinator}, not "
            f"{QUEUED_COORDINATOR}: no daemon would start the run (see README 'Several machines')"
        )
    return instance


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """dagster-postgres logs each retried connection as a warning with the server's multi-line message: the
    user gets the one line of the final error instead."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _origins() -> tuple[Any, Any]:
    """The job's remote origin (what the daemon's workspace resolves by location name) and its Python origin
    (what a container run launcher re-loads: module, attribute, working directory)."""
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    target = LoadableTargetOrigin(module_name=DEFINITIONS_MODULE, working_directory=str(PROJECT_ROOT))
    location = ManagedGrpcPythonEnvCodeLocationOrigin(loadable_target_origin=target, location_name=LOCATION_NAME)
    remote = RemoteJobOrigin(RemoteRepositoryOrigin(location, REPOSITORY_NAME), JOB_NAME)
    python = JobPythonOrigin(
        JOB_NAME,
        RepositoryPythonOrigin(
            executable_path=sys.executable,
            code_pointer=ModuleCodePointer(DEFINITIONS_MODULE, "defs", str(PROJECT_ROOT)),
            container_image=os.environ.get("DAGSTER_CURRENT_IMAGE"),
            entry_point=["dagster"],
            container_context={},
        ),
    )
    return remote, python


def submit_import(request: Any) -> dict[str, str]:
    """Land and record the upload, add its partition on the queue's instance, enqueue its `import_upload` run.
    Returns `{upload_id, run_id, campaign, status: queued}`."""
    from callaro_pipeline.cli.runner import QUIET_RUN_CONFIG, land_and_register
    from callaro_pipeline.definitions import loaded_definitions
    from callaro_pipeline.storage.uploads import update_upload

    instance = queue_instance()  # before anything is written: a usage error leaves no trace
    try:
        job = loaded_definitions().resolve_job_def(JOB_NAME)
        warehouse, upload_id, campaign = land_and_register(request)
        if not instance.has_dynamic_partition(UPLOADS, upload_id):
            instance.add_dynamic_partitions(UPLOADS, [upload_id])
        remote_origin, python_origin = _origins()
        tags = {
            **upload_run_tags(campaign, upload_id, "submit"),
            "dagster/partition": upload_id,
        }
        run = instance.create_run_for_job(
            job,
            run_config=QUIET_RUN_CONFIG,
            tags=tags,
            remote_job_origin=remote_origin,
            job_code_origin=python_origin,
        )
        with warehouse.transaction() as con:
            update_upload(con, upload_id, submitted={"run_id": run.run_id})
        instance.submit_run(run.run_id, workspace=None)  # the queue needs no workspace: the daemon loads the code
    finally:
        instance.dispose()
    return {"upload_id": upload_id, "run_id": run.run_id, "campaign": campaign, "status": "queued"}


class RunReader(contextlib.AbstractContextManager):
    """Reads runs from the DAGSTER_HOME instance, opened on first use and kept until `close` (or the end of a
    `with`): `report --wait` polls every second, and opening a Postgres-backed instance costs several times the
    read itself."""

    def __init__(self) -> None:
        self._instance: dg.DagsterInstance | None = None

    def run(self, home: str, run_id: str) -> dg.DagsterRun | None:
        with _quiet():
            if self._instance is None:
                self._instance = dg.DagsterInstance.from_config(home)
            return self._instance.get_run_by_id(run_id)

    def close(self) -> None:
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None

    def __exit__(self, *_exc: object) -> None:
        self.close()


def run_state(summary: dict[str, Any], reader: RunReader | None = None) -> tuple[str | None, str | None]:
    """For a submitted upload: ("queued" | "running" | "ended", run status) from the DAGSTER_HOME instance (the
    upload's record says `imported` once the book is merged, while its audience is still being built); (None,
    None) for any other upload; ("unknown", why) if the instance cannot be read. `reader` keeps the instance
    open between calls (else it is opened for this one)."""
    run_id = (summary.get("submitted") or {}).get("run_id")
    if not run_id or summary.get("failure"):
        return None, None
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if not home or not (Path(home) / "dagster.yaml").is_file():
        return "unknown", "DAGSTER_HOME is not set: the run's state cannot be read"
    with contextlib.nullcontext(reader) if reader else RunReader() as reading:
        try:
            run = reading.run(home, run_id)
        except Exception as error:
            reading.close()  # a lost connection: opened again on the next call
            return "unknown", (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    if run is None:
        return "unknown", f"run {run_id} is not in the instance of DAGSTER_HOME"
    status = run.status.value
    return WAITING.get(status, "ended"), status


def submitted_report(summary: dict[str, Any], reader: RunReader | None = None) -> dict[str, Any]:
    """The summary of an upload as `callaro report` shows it: a submitted one still in the queue or running has
    status `queued` / `running` (with `run_id`); one whose run ended without finishing the import is `failed`
    with the run's status as the reason."""
    state, detail = run_state(summary, reader)
    if state is None or (state in ("ended", "unknown") and summary["status"] != "failed"):
        return summary
    run_id = summary["submitted"]["run_id"]
    shown = {**summary, "run_id": run_id}
    if state in ("queued", "running"):
        return {**shown, "status": state, "run_status": detail}
    if state == "unknown":
        return {**shown, "status": "submitted", "run_status": None, "note": detail}
    message = f"the run {run_id} ended {detail} before the import finished; see the Dagster UI"
    return {**shown, "run_status": detail, "failure": {"stage": "run", "message": message, "exit_code": 2}}


def wait_for(load_summary: Any, *, timeout: float | None, poll_seconds: float = 1.0) -> dict[str, Any]:
    """Poll until the upload's run has ended (or `timeout` seconds pass); returns the last summary shown."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with RunReader() as reader:
        while True:
            summary = submitted_report(load_summary(), reader)
            if summary["status"] not in ("queued", "running"):  # `submitted`: its state cannot be read, say so
                return summary
            if deadline is not None and time.monotonic() > deadline:
                return summary
            time.sleep(poll_seconds)

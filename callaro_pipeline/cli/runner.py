"""Running the pipeline from the command line: the persistent Dagster instance and one run per upload."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from filelock import FileLock

from callaro_pipeline.core.config import load_campaign
from callaro_pipeline.core.errors import ConfigError, UnusableInput
from callaro_pipeline.core.gx_side_process import great_expectations_in_side_process
from callaro_pipeline.core.landing import check_source_file, land_upload
from callaro_pipeline.core.project_paths import check_name, paths
from callaro_pipeline.core.uploads import UploadOptions
from callaro_pipeline.defs.partitions import UPLOADS
from callaro_pipeline.defs.run_tags import CAMPAIGN_TAG, upload_run_tags
from callaro_pipeline.storage.uploads import (
    find_upload_by_sha,
    load_upload,
    register_upload,
    update_upload,
    upload_summary,
)
from callaro_pipeline.storage.warehouse import Warehouse

# The console logger would print every Dagster event to the terminal; events still reach the instance's log.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# The process of an in-process run: runs whose process died are released before the next run starts.
PID_TAG = "callaro/pid"

DAGSTER_YAML = """\
telemetry:
  enabled: false
# Dagster's SQLite storage where its default keeps it, with one SQLAlchemy engine per database file.
storage:
  custom:
    module: callaro_pipeline.defs.instance_storage
    class: HomeSqliteStorage
    config:
      base_dir:
        env: DAGSTER_HOME
# Every DuckDB writer declares pool "duckdb"; one slot means runs queue instead of fighting over the file lock.
# Enforced per run (the run queue starts one such run at a time), not per step: the warehouse file lock already
# serializes the writes inside runs, and a step slot held by a killed process would block every later run.
concurrency:
  pools:
    default_limit: 1
    granularity: run
"""


# One instance per Dagster home and process: building one checks each SQLite storage's schema revision (alembic
# reads its migration scripts each time), ~0.3 s of CPU that a process running several commands pays once.
_INSTANCES: dict[Path, dg.DagsterInstance] = {}


def dagster_instance() -> dg.DagsterInstance:
    """The instance under CALLARO_HOME/dagster, so partitions and run history survive restarts."""
    home = paths().dagster_home
    os.environ["DAGSTER_HOME"] = str(home)
    if home in _INSTANCES and (home / "dagster.yaml").is_file():
        return _INSTANCES[home]
    home.mkdir(parents=True, exist_ok=True)
    # Building the instance creates its SQLite storages on first use, and two first imports at once would both
    # create the same tables ("table instigators already exists"); the lock makes the first creation one at a time.
    with FileLock(str(home / ".instance.lock")):
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text(DAGSTER_YAML, encoding="utf-8")
        _INSTANCES[home] = dg.DagsterInstance.get()
    return _INSTANCES[home]


@dataclass
class ImportRequest:
    file: Path
    campaign: str
    mapping: Path | None = None
    expected_count: int | None = None
    default_region: str | None = None
    duplicates: str | None = None
    sheet: str | None = None
    manual: bool = False


# Which number of a stage's metadata to show in its progress line, and how to name it.
PROGRESS_COUNTS = (
    ("rows", "rows"),
    ("rejected_rows", "rows rejected"),
    ("suppressed", "suppressed"),
    ("imported", "imported"),
    ("campaigns", "audience(s) built"),
)


def _metadata_number(value: Any) -> Any:
    return getattr(value, "value", value)


def progress_line(event: Any) -> str | None:
    """One terminal line for a Dagster event of an import run (stage done with its row count, gate result,
    failure, skip); None for the events nobody needs to see. Uses counts and names only, never cell values."""
    kind = event.event_type_value
    if kind == "ASSET_MATERIALIZATION":
        materialization = event.event_specific_data.materialization
        name = materialization.asset_key.to_user_string()
        metadata = materialization.metadata or {}
        counts = [
            f"{_metadata_number(metadata[key]):,} {label}"
            for key, label in PROGRESS_COUNTS
            if key in metadata and isinstance(_metadata_number(metadata[key]), int)
        ]
        return f"  ✓ {name:<22} {counts[0] if counts else ''}".rstrip()
    if kind == "ASSET_CHECK_EVALUATION":
        data = event.event_specific_data
        mark, word = ("✓", "passed") if data.passed else ("✗", "FAILED")
        detail = data.description or ""
        return f"  {mark} gate {data.check_name} {word}" + (f": {detail}" if detail else "")
    if kind == "STEP_FAILURE":
        return f"  ✗ {event.step_key} failed"
    if kind == "STEP_SKIPPED":
        return f"  - {event.step_key} skipped (an upstream gate or step failed)"
    return None


class StageProgress(logging.Handler):
    """Prints one line per finished stage (with its row count) and per gate to stderr. Attached only when the
    CLI runs on a terminal without --json (see `progress_logger`)."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return
        line = progress_line(event)
        if line:
            print(line, file=sys.stderr, flush=True)


def progress_logger() -> dg.LoggerDefinition:
    """A Dagster logger around StageProgress: Dagster hands run events to a job's @loggers, not to Python's
    `dagster` logger, so progress is a logger of the job for this one run (run config `callaro_progress`)."""

    @dg.logger(config_schema=None, description="Stage-by-stage progress of `callaro import` on a terminal.")
    def callaro_progress(_init_context: dg.InitLoggerContext) -> logging.Logger:
        progress = logging.Logger("callaro_progress", level=logging.DEBUG)
        progress.addHandler(StageProgress())
        return progress

    return callaro_progress


def run_import(request: ImportRequest, *, progress: bool = False) -> dict[str, Any]:
    """Land the file, register its partition, run the whole per-upload chain in one Dagster run."""
    warehouse, upload_id, campaign_name = land_and_register(request)
    return _run_upload_chain(warehouse, upload_id, campaign_name, via="cli", progress=progress)


def land_and_register(request: ImportRequest) -> tuple[Warehouse, str, str]:
    """Keep the original under CALLARO_HOME/uploads and record the upload; returns (warehouse, upload id, campaign)."""
    campaign_name = check_name(request.campaign, "campaign name")
    check_source_file(request.file)  # a regular file: links, FIFOs and devices are refused
    if request.mapping is not None and not request.mapping.is_file():
        raise UnusableInput(f"no such mapping file: {request.mapping.name}")
    load_campaign(campaign_name, create=True)
    warehouse = Warehouse()
    landed = land_upload(
        request.file, campaign=campaign_name, original_name=request.file.name, uploads_dir=warehouse.paths.uploads
    )
    options = UploadOptions(
        expected_count=request.expected_count,
        default_region=request.default_region.upper() if request.default_region else None,
        duplicates=request.duplicates,
        mapping_path=str(request.mapping.resolve()) if request.mapping else None,
        sheet=request.sheet,
        manual=request.manual,
    )
    with warehouse.transaction() as con:
        previous = find_upload_by_sha(con, campaign_name, landed.sha256)
        register_upload(con, landed, options)
        if previous:
            update_upload(con, landed.upload_id, same_file_as=previous)
    return warehouse, landed.upload_id, campaign_name


def rerun_upload(upload_id: str, *, progress: bool = False) -> dict[str, Any]:
    """Run an upload's whole chain again for its existing partition, e.g. after a run was killed mid-way.

    Every stage replaces the upload's rows in one transaction and the contact book merge is idempotent, so the
    warehouse ends exactly as if the upload had been imported once (the killed run itself is marked failed and
    its pool slot freed by `release_abandoned_runs`, as before every run).
    """
    check_name(upload_id, "upload id")
    warehouse = Warehouse()
    with warehouse.connect() as con:
        upload = load_upload(con, upload_id)
    if upload.status == "undone":
        raise ConfigError(f"upload {upload_id} was undone; import the file again instead")
    if not Path(upload.stored_path).is_file():
        raise UnusableInput(f"the stored original of upload {upload_id} is missing")
    with warehouse.transaction() as con:
        update_upload(con, upload_id, status="registered", failure=None, blocked_by=None)
    return _run_upload_chain(warehouse, upload_id, upload.campaign, via="rerun", progress=progress)


def _run_upload_chain(
    warehouse: Warehouse, upload_id: str, campaign: str, *, via: str, progress: bool
) -> dict[str, Any]:
    """One `import_upload` run for the upload's partition, then its summary (a run that died is `failed`)."""
    with great_expectations_in_side_process():
        return _run_upload_chain_here(warehouse, upload_id, campaign, via=via, progress=progress)


def _run_upload_chain_here(
    warehouse: Warehouse, upload_id: str, campaign: str, *, via: str, progress: bool
) -> dict[str, Any]:
    from callaro_pipeline.definitions import loaded_definitions

    defs = loaded_definitions()

    instance = dagster_instance()
    release_abandoned_runs(instance)
    if not instance.has_dynamic_partition(UPLOADS, upload_id):
        instance.add_dynamic_partitions(UPLOADS, [upload_id])
    job = defs.resolve_job_def("import_upload")
    run_config: dict[str, Any] = QUIET_RUN_CONFIG
    if progress:
        job = job.with_logger_defs({**job.loggers, "callaro_progress": progress_logger()})
        run_config = {"loggers": {**QUIET_RUN_CONFIG["loggers"], "callaro_progress": {}}}
        print(f"importing upload {upload_id}", file=sys.stderr, flush=True)
    result = job.execute_in_process(
        partition_key=upload_id,
        instance=instance,
        run_config=run_config,
        tags={**upload_run_tags(campaign, upload_id, via), PID_TAG: process_tag()},
        raise_on_error=False,
    )
    with warehouse.transaction() as con:
        summary = upload_summary(con, upload_id)
        if summary["status"] not in ("imported", "blocked") and "failure" not in summary:
            update_upload(
                con,
                upload_id,
                status="failed",
                failure={"stage": "run", "message": run_failure_message(result), "exit_code": 2},
            )
            summary = upload_summary(con, upload_id)
    return summary


def run_failure_message(result: Any) -> str:
    """The first failed step of a run and its worded reason (first line: never a traceback), for the summary."""
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        text = (data.user_failure_data.description if data.user_failure_data else None) or (
            data.error.message if data.error else ""
        )
        first = (text or "").strip().splitlines()[0] if (text or "").strip() else "failed"
        return f"the run failed at {event.step_key}: {first}"
    return "the run failed; see the Dagster UI"


def release_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Runs started in-process by a command whose process is gone (killed, crashed machine): mark them failed
    and free the `duckdb` pool slot they held, which would otherwise block every later run for good.

    Only runs carrying our process tag are touched: the Dagster daemon watches the runs it launched itself.
    Returns the ids of the runs released.
    """
    unfinished = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED]
        )
    )
    released = []
    for run in unfinished:
        host, _, pid = run.tags.get(PID_TAG, "").rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not _process_alive(int(pid)):
            instance.report_run_failed(run, "the process running this run ended before it finished")
            if instance.event_log_storage.supports_global_concurrency_limits:
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            released.append(run.run_id)
    return released


def process_tag() -> str:
    """`<host>:<pid>` of this process, for PID_TAG (a home shared between machines only judges its own runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_job(name: str, *, tags: dict[str, str] | None = None, asset_selection: list[dg.AssetKey] | None = None) -> bool:
    from callaro_pipeline.definitions import loaded_definitions

    defs = loaded_definitions()

    # dbt streams its own log lines to stdout; they belong in the run's logs, not on the user's terminal.
    instance = dagster_instance()
    release_abandoned_runs(instance)
    with contextlib.redirect_stdout(io.StringIO()):
        result = defs.resolve_job_def(name).execute_in_process(
            instance=instance,
            tags={**(tags or {}), PID_TAG: process_tag()},
            run_config=QUIET_RUN_CONFIG,
            raise_on_error=False,
            asset_selection=asset_selection,
        )
    return result.success


def rebuild_audiences(campaigns: list[str]) -> list[str]:
    """Rebuild these campaigns' audiences after a change to the book (undo, contacts update/remove): one run of
    `campaign_audiences` per campaign. Segment models are views, always current, so no dbt build is needed.
    Returns the campaigns whose audience was not rebuilt (e.g. a DNC list fails closed: the previous build
    stays current)."""
    audiences = [dg.AssetKey("campaign_audiences")]
    return [
        campaign
        for campaign in campaigns
        if not run_job("rebuild_segments_and_audiences", tags={CAMPAIGN_TAG: campaign}, asset_selection=audiences)
    ]

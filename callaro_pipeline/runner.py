"""Running the pipeline from the command line: the persistent Dagster instance and one run per upload."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from callaro_pipeline.config import check_name, load_campaign, paths
from callaro_pipeline.errors import UnusableInput
from callaro_pipeline.landing import land_upload
from callaro_pipeline.partitions import UPLOADS
from callaro_pipeline.uploads import UploadOptions, find_upload_by_sha, register_upload, update_upload, upload_summary
from callaro_pipeline.warehouse import Warehouse

# The console logger would print every Dagster event to the terminal; events still reach the instance's log.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

DAGSTER_YAML = """\
telemetry:
  enabled: false
# Every DuckDB writer declares pool "duckdb"; one slot means runs queue instead of fighting over the file lock.
concurrency:
  pools:
    default_limit: 1
"""


def dagster_instance() -> dg.DagsterInstance:
    """The instance under CALLARO_HOME/dagster, so partitions and run history survive restarts."""
    home = paths().dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML, encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


@dataclass
class ImportRequest:
    file: Path
    campaign: str
    mapping: Path | None = None
    expected_count: int | None = None
    default_region: str | None = None
    duplicates: str | None = None
    sheet: str | None = None


class StageProgress(logging.Handler):
    """Prints one line per finished stage on a terminal (stderr); silent otherwise."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return
        if event.event_type_value == "STEP_SUCCESS":
            print(f"  ✓ {event.step_key}", file=sys.stderr, flush=True)
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data.asset_check_evaluation
            mark = "✓" if data.passed else "✗"
            print(f"  {mark} check {data.check_name}", file=sys.stderr, flush=True)


def run_import(request: ImportRequest, *, progress: bool = False) -> dict[str, Any]:
    """Land the file, register its partition, run the whole per-upload chain in one Dagster run."""
    from callaro_pipeline.definitions import defs

    campaign_name = check_name(request.campaign, "campaign name")
    if not request.file.is_file():
        raise UnusableInput(f"no such file: {request.file.name}")
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
    )
    with warehouse.transaction() as con:
        previous = find_upload_by_sha(con, campaign_name, landed.sha256)
        register_upload(con, landed, options)
        if previous:
            update_upload(con, landed.upload_id, same_file_as=previous)
    instance = dagster_instance()
    instance.add_dynamic_partitions(UPLOADS, [landed.upload_id])
    handler = StageProgress() if progress else None
    dagster_logger = logging.getLogger("dagster")
    if handler:
        dagster_logger.addHandler(handler)
    try:
        defs.resolve_job_def("import_upload").execute_in_process(
            partition_key=landed.upload_id,
            instance=instance,
            run_config=QUIET_RUN_CONFIG,
            tags={"callaro/campaign": campaign_name, "callaro/upload_id": landed.upload_id, "callaro/via": "cli"},
            raise_on_error=False,
        )
    finally:
        if handler:
            dagster_logger.removeHandler(handler)
    with warehouse.transaction() as con:
        summary = upload_summary(con, landed.upload_id)
        if summary["status"] not in ("imported", "blocked") and "failure" not in summary:
            update_upload(
                con,
                landed.upload_id,
                status="failed",
                failure={"stage": "run", "message": "the run failed; see the Dagster UI"},
            )
            summary = upload_summary(con, landed.upload_id)
    warehouse.publish_snapshot()
    return summary


def run_job(name: str, *, tags: dict[str, str] | None = None) -> bool:
    from callaro_pipeline.definitions import defs

    # dbt streams its own log lines to stdout; they belong in the run's logs, not on the user's terminal.
    with contextlib.redirect_stdout(io.StringIO()):
        result = defs.resolve_job_def(name).execute_in_process(
            instance=dagster_instance(), tags=tags or {}, run_config=QUIET_RUN_CONFIG, raise_on_error=False
        )
    Warehouse().publish_snapshot()
    return result.success

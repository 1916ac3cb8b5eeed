"""Unattended vendor-list ingests: a drop-folder sensor and a daily vendor-feed schedule, both off by default.

Files dropped in CALLARO_HOME/inbox/<campaign>/ are landed and registered as an upload partition, then run with
the campaign's saved mapping. The run_key is the campaign plus the file's sha256: the same bytes dropped twice
import once, while a corrected file under the same name imports again. A crash mid-tick is harmless: the next
tick finds the upload already registered for those bytes and requests the same run_key again.
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from callaro_pipeline.core.errors import CallaroError
from callaro_pipeline.core.landing import land_upload
from callaro_pipeline.core.project_paths import check_name
from callaro_pipeline.core.uploads import UploadOptions
from callaro_pipeline.defs import jobs
from callaro_pipeline.defs.partitions import UPLOADS
from callaro_pipeline.defs.run_tags import upload_run_tags
from callaro_pipeline.storage.uploads import inbox_upload_by_sha, mark_upload_from_inbox, register_upload
from callaro_pipeline.storage.warehouse import Warehouse

ACCEPTED_SUFFIXES = {".csv", ".tsv", ".txt", ".xlsx"}


@dataclass(frozen=True)
class DroppedFile:
    campaign: str
    path: Path
    sha256: str

    @property
    def run_key(self) -> str:
        return f"{self.campaign}:{self.sha256}"


def dropped_files(inbox: Path) -> Iterator[DroppedFile]:
    """Files waiting in inbox/<campaign>/, skipping partial writes (dot-files, temporary suffixes)."""
    if not inbox.is_dir():
        return
    for campaign_dir in sorted(p for p in inbox.iterdir() if p.is_dir()):
        try:
            campaign = check_name(campaign_dir.name, "campaign name")
        except CallaroError:
            continue
        for path in sorted(campaign_dir.iterdir()):
            # a symbolic link is never followed (a planted link would copy its target into uploads/)
            if (
                path.is_file()
                and not path.is_symlink()
                and not path.name.startswith(".")
                and path.suffix.lower() in ACCEPTED_SUFFIXES
            ):
                yield DroppedFile(campaign, path, hashlib.sha256(path.read_bytes()).hexdigest())


def registered_upload_for(warehouse: Warehouse, dropped: DroppedFile) -> str | None:
    with warehouse.connect() as con:
        return inbox_upload_by_sha(con, dropped.campaign, dropped.sha256)


def land_dropped_file(warehouse: Warehouse, dropped: DroppedFile) -> str:
    """Land and register a dropped file once per content; returns its upload id."""
    existing = registered_upload_for(warehouse, dropped)
    if existing:
        return existing
    landed = land_upload(
        dropped.path, campaign=dropped.campaign, original_name=dropped.path.name, uploads_dir=warehouse.paths.uploads
    )
    with warehouse.transaction() as con:
        register_upload(con, landed, UploadOptions())
        mark_upload_from_inbox(con, landed.upload_id)
    return landed.upload_id


def inbox_run_requests(warehouse: Warehouse) -> tuple[list[dg.RunRequest], list[str]]:
    requests, keys = [], []
    for dropped in dropped_files(warehouse.paths.inbox):
        upload_id = land_dropped_file(warehouse, dropped)
        keys.append(upload_id)
        requests.append(
            dg.RunRequest(
                run_key=dropped.run_key,
                partition_key=upload_id,
                tags=upload_run_tags(dropped.campaign, upload_id, "inbox"),
            )
        )
    return requests, keys


def build_inbox_sensor(job: "dg.JobDefinition | dg.UnresolvedAssetJobDefinition") -> dg.SensorDefinition:
    @dg.sensor(
        name="vendor_drop_folder_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Imports files dropped in CALLARO_HOME/inbox/<campaign>/ with the campaign's saved mapping "
        "(run_key = campaign + sha256: the same bytes import once, a corrected file imports again).",
    )
    def vendor_drop_folder_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse) -> dg.SensorResult:
        requests, keys = inbox_run_requests(warehouse)
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(UPLOADS, keys)] if keys else [],
        )

    return vendor_drop_folder_sensor


def build_vendor_schedule(job: "dg.JobDefinition | dg.UnresolvedAssetJobDefinition") -> dg.ScheduleDefinition:
    @dg.schedule(
        name="daily_vendor_feed_schedule",
        job=job,
        cron_schedule="0 6 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every day at 06:00 UTC, imports the recurring vendor files waiting in the inbox "
        "(for feeds delivered on a timetable rather than watched continuously).",
    )
    def daily_vendor_feed_schedule(context: dg.ScheduleEvaluationContext, warehouse: Warehouse):
        requests, keys = inbox_run_requests(warehouse)
        if keys:
            context.instance.add_dynamic_partitions(
                UPLOADS, [k for k in keys if not context.instance.has_dynamic_partition(UPLOADS, k)]
            )
        return requests or dg.SkipReason("no new vendor files in the inbox")

    return daily_vendor_feed_schedule


vendor_drop_folder_sensor = build_inbox_sensor(jobs.import_upload_job)
daily_vendor_feed_schedule = build_vendor_schedule(jobs.import_upload_job)

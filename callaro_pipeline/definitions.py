"""The one place the Dagster code location is assembled: assets by stage, checks, jobs, sensors, schedule."""

from __future__ import annotations

import dagster as dg

from callaro_pipeline.assets import audiences, contact_book, dnc, ingest, maintenance, segments, suppression, validation
from callaro_pipeline.automation import build_automation_sensor
from callaro_pipeline.sensors import build_inbox_sensor, build_vendor_schedule
from callaro_pipeline.warehouse import Warehouse

FIRST_STAGE = dg.AssetSelection.assets(ingest.raw_upload)
UPLOAD_CHAIN = dg.AssetSelection.assets(
    ingest.raw_upload,
    validation.mapped_contacts,
    "validated_contacts",
    "rejected_rows",
    suppression.suppressed_contacts,
    contact_book.contacts,
    audiences.campaign_audiences,
)

import_upload_job = dg.define_asset_job(
    "import_upload",
    selection=UPLOAD_CHAIN,
    description="Imports one upload end to end in one run, so its blocking gates stop what follows: raw file → "
    "mapped → validated (Pandera, Great Expectations) → DNC/consent suppression → contact book → the campaign's "
    "audience.",
)
rebuild_segments_job = dg.define_asset_job(
    "rebuild_segments_and_audiences",
    selection=dg.AssetSelection.assets(segments.segment_models, audiences.campaign_audiences),
    description="dbt build of the segment models (with their tests), then every campaign's audience.",
)
refresh_dnc_job = dg.define_asset_job(
    "refresh_dnc",
    selection=dg.AssetSelection.assets(dnc.dnc_lists),
    description="Loads DNC files waiting in CALLARO_HOME/dnc/inbox/<source>/ (fails closed on junk or shrinkage).",
)

defs = dg.Definitions(
    assets=[
        ingest.raw_upload,
        validation.mapped_contacts,
        validation.validated_contacts,
        suppression.suppressed_contacts,
        contact_book.contacts,
        segments.segment_models,
        audiences.campaign_audiences,
        dnc.dnc_lists,
    ],
    asset_checks=[
        validation.pandera_validated_contacts,
        validation.great_expectations_upload,
        suppression.dnc_lists_usable,
    ],
    jobs=[import_upload_job, rebuild_segments_job, refresh_dnc_job, maintenance.lake_maintenance],
    sensors=[build_inbox_sensor(import_upload_job), build_automation_sensor(UPLOAD_CHAIN - FIRST_STAGE)],
    schedules=[build_vendor_schedule(import_upload_job), maintenance.lake_maintenance_schedule],
    resources={"warehouse": Warehouse(), "dbt": segments.dbt_resource()},
    # Runs launched from the UI, a sensor or a schedule run their steps in the run's own process: the default
    # multiprocess executor starts a fresh Python per step (~10 s each here: Dagster, polars, DuckDB imports),
    # while the steps of one upload run one after another anyway (one chain, one writer pool).
    executor=dg.in_process_executor,
)

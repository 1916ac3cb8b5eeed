"""contacts: the upload's released rows (validated, not suppressed) merged into the one contact book."""

import time

import dagster as dg

from callaro_pipeline.core.gates import GE_GATE, PANDERA_GATE
from callaro_pipeline.defs.automation.conditions import follows_its_upload
from callaro_pipeline.defs.failures import withhold_error_details
from callaro_pipeline.defs.metadata import upload_metadata
from callaro_pipeline.defs.partitions import WAREHOUSE_POOL, upload_partitions
from callaro_pipeline.defs.suppress.assets import DNC_GATE, suppressed_contacts
from callaro_pipeline.storage import segments
from callaro_pipeline.storage.contact_book_merge import merge_released_rows, release_blocker, remember_campaign_state
from callaro_pipeline.storage.uploads import load_upload, update_upload, upload_summary, utcnow
from callaro_pipeline.storage.warehouse import Warehouse

REQUIRED_GATES = (PANDERA_GATE, GE_GATE, DNC_GATE)


@dg.asset(
    partitions_def=upload_partitions,
    group_name="contact_book",
    deps=[suppressed_contacts],
    pool=WAREHOUSE_POOL,
    automation_condition=follows_its_upload(),
    kinds={"duckdb", "polars"},
    owners=["team:data"],
    description="The contact book: one row per person (stable contact_id from the E.164 key) with standard "
    "fields, custom_fields JSON and lineage; campaign_contacts links the upload's contacts to its campaign. "
    "Only uploads whose gates all passed are merged.",
)
@withhold_error_details
def contacts(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    upload_id = context.partition_key
    started = time.perf_counter()
    with warehouse.transaction() as con:
        upload = load_upload(con, upload_id)
        reason = release_blocker(con, upload_id, REQUIRED_GATES)
        if reason:
            # in words, as a Failure (no stack trace of ours): the UI shows this description on the run and asset
            raise dg.Failure(
                description=f"{reason} (upload {upload_id}: nothing released)",
                metadata={
                    k: v
                    for k, v in upload_metadata(upload_summary(con, upload_id)).items()
                    if k in ("import_status", "import_summary")
                },
                allow_retries=False,
            )
        imported, counts = merge_released_rows(con, upload, now=utcnow())
        if not upload.options.manual:  # a contact added by hand is not a vendor file: keep the campaign's state
            remember_campaign_state(con, upload, now=utcnow())
        update_upload(
            con,
            upload_id,
            status="imported",
            imported=imported,
            book=counts,
            timings={"contact_book_seconds": round(time.perf_counter() - started, 3)},
        )
        overview = upload_metadata(upload_summary(con, upload_id))
        first_write = segments.views_missing(con)
    if first_write:  # a fresh home: the segments schema is queryable from its first import on (contract)
        segments.ensure_segment_views(warehouse)
    return dg.MaterializeResult(
        metadata={
            "import_status": overview.pop("import_status"),
            "imported": imported,
            **{k: int(v) for k, v in counts.items()},
            "campaign": upload.campaign,
            **overview,
        }
    )

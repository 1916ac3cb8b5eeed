"""suppressed_contacts: the upload's validated contacts scrubbed against every DNC list and the consent policy."""

import time
from datetime import UTC, datetime

import dagster as dg

from callaro_pipeline.core.config import load_campaign
from callaro_pipeline.core.suppression import suppressed_rows
from callaro_pipeline.defs.automation.conditions import follows_its_upload, runs_with_its_asset
from callaro_pipeline.defs.failures import withhold_error_details
from callaro_pipeline.defs.metadata import upload_metadata
from callaro_pipeline.defs.partitions import upload_partitions
from callaro_pipeline.storage.stage_tables import read_validated_rows
from callaro_pipeline.storage.suppression import dnc_problems, scrub
from callaro_pipeline.storage.uploads import load_upload, record_check, update_upload, upload_summary
from callaro_pipeline.storage.warehouse import Warehouse, replace_partition

DNC_GATE = "dnc_lists_usable"


@dg.asset(
    partitions_def=upload_partitions,
    group_name="suppress",
    deps=["validated_contacts"],
    automation_condition=follows_its_upload(),
    kinds={"duckdb", "polars"},
    owners=["team:compliance"],
    description="Validated contacts that may not be called: on a DNC list that applies to the campaign (matched "
    "on E.164 whatever the input format) or opted out. Each keeps its reasons. The consent a campaign requires "
    "is decided by its audience (no_consent); listed other numbers are taken off their contact.",
)
@withhold_error_details
def suppressed_contacts(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    upload_id = context.partition_key
    started = time.perf_counter()
    with warehouse.transaction() as con:
        upload = load_upload(con, upload_id)
        campaign = load_campaign(upload.campaign, create=True)
        valid = read_validated_rows(con, upload_id)
        # DNC and opt-outs only: the consent a campaign requires is its audience's criterion (no_consent), so an
        # unconsented contact still enters the book and the campaign (the import still imports)
        scrubbed = scrub(con, valid, campaign=campaign, upload=True)
        suppressed = suppressed_rows(scrubbed, datetime.now(UTC).replace(tzinfo=None))
        replace_partition(con, "suppressed_contacts", upload_id, suppressed.rows)
        update_upload(
            con,
            upload_id,
            suppressed=suppressed.rows.height,
            suppressed_by_reason=suppressed.by_reason,
            other_phones_suppressed=suppressed.other_phones,
            timings={"suppress_seconds": round(time.perf_counter() - started, 3)},
        )
    return dg.MaterializeResult(
        metadata={
            "suppressed": suppressed.rows.height,
            "suppressed_by_reason": dg.MetadataValue.json(suppressed.by_reason),
            "other_phones_suppressed": suppressed.other_phones,
        }
    )


@dg.asset_check(
    asset=suppressed_contacts,
    blocking=True,
    partitions_def=upload_partitions,
    automation_condition=runs_with_its_asset(),
    description="Fail closed: the latest load of every DNC list that applies to the campaign is not empty. A missing "
    "or stale national registry does not block the import: the campaign's audience is not built, and says why.",
)
@withhold_error_details
def dnc_lists_usable(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    upload_id = context.partition_key
    with warehouse.transaction() as con:
        upload = load_upload(con, upload_id)
        campaign = load_campaign(upload.campaign, create=True)
        # The lists must be intact to scrub the upload; whether the national list is loaded and fresh enough to
        # call is the audience's question (it is not built without it and says why): the import still imports.
        problems = dnc_problems(con, sources=campaign.dnc_sources, require_national=False, now=datetime.now(UTC))
        detail = "; ".join(problems) if problems else "all DNC lists that apply are loaded and fresh"
        record_check(con, upload_id, DNC_GATE, not problems, detail, {"problems": len(problems)})
        metadata: dict = {"problems": len(problems), "detail": detail}
        if problems:
            update_upload(con, upload_id, status="blocked", blocked_by={"gate": DNC_GATE, "detail": detail})
            # a blocked upload says why, in words, right on the check (downstream steps are skipped)
            overview = upload_metadata(upload_summary(con, upload_id))
            metadata.update(import_status=overview["import_status"], import_summary=overview["import_summary"])
    description = f"blocked by {DNC_GATE}: {detail}" if problems else detail
    return dg.AssetCheckResult(passed=not problems, description=description, metadata=metadata)

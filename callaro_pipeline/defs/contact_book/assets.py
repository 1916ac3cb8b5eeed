"""contacts: the upload's released rows (validated, not suppressed) merged into the one contact book."""

import time

import dagster as dg

from callaro_pipeline.core.config import Campaign
from callaro_pipeline.core.gates import GE_GATE, PANDERA_GATE
from callaro_pipeline.defs.automation.conditions import follows_its_upload
from callaro_pipeline.defs.failures import withhold_error_details
from callaro_pipeline.defs.metadata import upload_metadata
from callaro_pipeline.defs.partitions import WAREHOUSE_POOL, upload_partitions
from callaro_pipeline.defs.suppress.assets import DNC_GATE, suppressed_contacts
from callaro_pipeline.storage import segments
from callaro_pipeline.storage.contact_book import merge_upload_into_book
from callaro_pipeline.storage.suppression import drop_listed_other_phones
from callaro_pipeline.storage.uploads import failed_checks, load_upload, update_upload, upload_summary, utcnow
from callaro_pipeline.storage.warehouse import Warehouse

REQUIRED_GATES = (PANDERA_GATE, GE_GATE, DNC_GATE)

RELEASED_SQL = """
SELECT v.* EXCLUDE (upload_id)
FROM validated_contacts v
ANTI JOIN (SELECT row_number FROM suppressed_contacts WHERE upload_id = ?) s USING (row_number)
WHERE v.upload_id = ?
ORDER BY v.row_number
"""


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
        # Blocking checks only block inside one run: a run that materializes this asset alone must not
        # release an upload whose gates failed or never ran.
        passed = {
            r[0]
            for r in con.execute(
                "SELECT name FROM upload_checks WHERE upload_id = ? AND passed", [upload_id]
            ).fetchall()
        }
        failed = failed_checks(con, upload_id)
        missing = [gate for gate in REQUIRED_GATES if gate not in passed]
        if failed or missing:
            reason = (
                "; ".join(f"blocked by {name}: {detail}" for name, detail in failed)
                or f"blocked: gates not evaluated: {', '.join(missing)} (launch the import_upload job)"
            )
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
        imported = con.execute(f"SELECT count(*) FROM ({RELEASED_SQL})", [upload_id, upload_id]).fetchall()[0][0]  # noqa: S608
        # the released rows are handed over, not kept here: the merge frees them once it has its own copy
        counts = merge_upload_into_book(
            con,
            upload_id=upload_id,
            campaign=upload.campaign,
            # other numbers listed now on the campaign's lists never reach the book (the contact keeps its phone)
            contacts=drop_listed_other_phones(
                con, con.execute(RELEASED_SQL, [upload_id, upload_id]).pl(), Campaign(name=upload.campaign).dnc_sources
            ),
            now=utcnow(),
        )
        if not upload.options.manual:  # a contact added by hand is not a vendor file: keep the campaign's state
            con.execute(
                """
                MERGE INTO campaign_state AS s
                USING (
                    SELECT ? AS campaign, ? AS last_upload_id, ?::JSON AS last_mapping,
                           (SELECT to_json(list(name ORDER BY position)) FROM raw_columns WHERE upload_id = ?)
                               AS last_columns,
                           ?::TIMESTAMP AS updated_at
                ) AS n ON s.campaign = n.campaign
                WHEN MATCHED THEN UPDATE SET last_upload_id = n.last_upload_id, last_mapping = n.last_mapping,
                    last_columns = n.last_columns, updated_at = n.updated_at
                WHEN NOT MATCHED THEN INSERT BY NAME
                """,
                [upload.campaign, upload_id, upload.summary.get("mapping_json"), upload_id, utcnow()],
            )
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

"""mapped_contacts, validated_contacts + rejected_rows, and the blocking Pandera and Great Expectations gates."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from callaro_pipeline.core.config import load_campaign, load_custom_fields
from callaro_pipeline.core.errors import CallaroError
from callaro_pipeline.core.flow import CheckedUpload, MappedUpload, check_upload, conflict_report, map_upload
from callaro_pipeline.core.gates import GateResult
from callaro_pipeline.core.gx_gate import great_expectations_gate
from callaro_pipeline.core.mapping import Mapping
from callaro_pipeline.core.pandera_gate import pandera_gate
from callaro_pipeline.core.privacy import mask_frame
from callaro_pipeline.core.report import write_csv_safely, write_error_report
from callaro_pipeline.core.uploads import UploadRecord
from callaro_pipeline.defs.automation.conditions import follows_its_upload, runs_with_its_asset
from callaro_pipeline.defs.failures import withhold_error_details
from callaro_pipeline.defs.ingest.assets import fail_upload, raw_upload
from callaro_pipeline.defs.metadata import frame_markdown, in_progress, upload_metadata
from callaro_pipeline.defs.partitions import upload_partitions
from callaro_pipeline.storage.stage_tables import (
    campaign_contacts_sharing_keys,
    read_mapped_upload,
    read_raw_upload,
    read_validated_rows,
    store_validated_upload,
)
from callaro_pipeline.storage.uploads import load_upload, record_check, update_upload, upload_summary
from callaro_pipeline.storage.warehouse import Warehouse, replace_partition


@dg.asset(
    partitions_def=upload_partitions,
    group_name="validate",
    deps=[raw_upload],
    automation_condition=follows_its_upload(),
    kinds={"duckdb", "polars"},
    owners=["team:data"],
    description=(
        "Source columns mapped to standard fields and declared custom fields (mapping file, the campaign's "
        "remembered mapping, or automatic matching by name and aliases). Unmapped columns and column drift "
        "against the campaign's previous upload are reported in the metadata."
    ),
)
@withhold_error_details
def mapped_contacts(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    upload_id = context.partition_key
    with warehouse.connect() as con:
        upload = load_upload(con, upload_id)
        columns, rows, state = read_raw_upload(con, upload_id, upload.campaign)
    try:
        campaign = load_campaign(upload.campaign, create=True)
        registry = load_custom_fields()
        mapped = map_upload(
            rows,
            columns,
            campaign=campaign,
            options=upload.options,
            registry=registry,
            remembered_mapping=state[0] if state else None,
            # a contact added by hand is not compared with the campaign's vendor files (no column drift)
            previous_columns=state[1] if state and not upload.options.manual else None,
        )
    except CallaroError as error:
        raise fail_upload(warehouse, upload_id, "mapping columns", error) from None
    del rows  # the raw text, not held through the write below (peak memory)
    drift = mapped.drift.as_dict()  # with `unmapped_fields`, which the Great Expectations gate blocks on
    with warehouse.transaction() as con:
        replace_partition(con, "mapped_contacts", upload_id, mapped.contacts)
        update_upload(
            con,
            upload_id,
            mapping={
                "source": mapped.mapping.source,
                "fields": mapped.mapping.fields,
                "unmapped": mapped.mapping.unmapped,
            },
            mapping_json=mapped.mapping.to_json(),
            column_drift=drift if mapped.drift.changed else None,
        )
    return _mapped_result(mapped, drift)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "validated_contacts",
            deps=[mapped_contacts],
            group_name="validate",
            automation_condition=follows_its_upload(),
            kinds={"duckdb", "polars"},
            owners=["team:data"],
            description="Contacts that passed validation and the duplicate policy: E.164 phones, IANA time zones "
            "with their source, checked e-mails and consent.",
        ),
        dg.AssetSpec(
            "rejected_rows",
            deps=[mapped_contacts],
            group_name="validate",
            automation_condition=follows_its_upload(),
            kinds={"duckdb", "polars"},
            owners=["team:data"],
            description="One line per problem (row_number, column, field, code, message, value); also written as "
            "the upload's error report CSV, formula-safe.",
        ),
    ],
    partitions_def=upload_partitions,
)
@withhold_error_details
def validated_contacts(context: dg.AssetExecutionContext, warehouse: Warehouse):
    upload_id = context.partition_key
    started = time.perf_counter()
    with warehouse.connect() as con:
        upload = load_upload(con, upload_id)
    checked, counts, conflicts = _check_upload(warehouse, upload)
    problems = checked.problems
    error_report, split_file, conflicts_file = _write_reports(warehouse, upload_id, checked, conflicts)
    del conflicts
    record = {
        "error_report": str(error_report),
        "duplicates_file": split_file,
        "merge_conflicts_report": conflicts_file,
        "timings": {"validate_seconds": round(time.perf_counter() - started, 3)},
        **_kept_counts(checked.kept),
        **counts,
    }
    summary = store_validated_upload(warehouse, upload_id, checked.kept, problems, record)
    # the gates run next: until then the upload is neither imported nor blocked
    overview = upload_metadata(in_progress(summary, "validated, gates pending"))
    yield from _validated_results(checked.kept, counts, overview, error_report)


def _check_upload(warehouse: Warehouse, upload: UploadRecord) -> tuple[CheckedUpload, dict[str, Any], pl.DataFrame]:
    """The upload's mapped rows validated and put through the duplicate policy, with their counts and the
    merge-conflict report."""
    upload_id = upload.upload_id
    with warehouse.connect() as con:
        mapped, malformed = read_mapped_upload(con, upload_id)

    def existing(keys: pl.DataFrame) -> pl.DataFrame:
        return campaign_contacts_sharing_keys(warehouse, keys, upload.campaign, upload_id)

    try:
        campaign = load_campaign(upload.campaign, create=True)
        checked = check_upload(
            mapped,
            Mapping.from_json(upload.summary["mapping_json"]),
            campaign=campaign,
            options=upload.options,
            registry=load_custom_fields(),
            malformed=malformed,
            existing=existing,
        )
    except CallaroError as error:
        raise fail_upload(warehouse, upload_id, "validating rows", error) from None
    counts = checked.counts()
    # policy merge: every conflicting value, listed in a report file next to the error report (values whole
    # there, as in the error report; only the count reaches metadata and logs)
    conflicts = conflict_report(checked.validation.valid, checked.duplicates.conflicts)
    # a million rows of text each, not held through the writes that follow (peak memory): the input (freed on
    # return), and the valid rows before the duplicate policy (counted above; `kept` is what is written)
    checked.validation.valid = checked.validation.valid.clear()
    return checked, counts, conflicts


def _mapped_result(mapped: MappedUpload, drift: dict[str, Any]) -> dg.MaterializeResult:
    """mapped_contacts' metadata: the mapping, its source, the columns left unmapped and the column drift."""
    return dg.MaterializeResult(
        metadata={
            "mapping_source": mapped.mapping.source,
            "mapping": dg.MetadataValue.json(mapped.mapping.fields),
            "unmapped_columns": dg.MetadataValue.json(mapped.mapping.unmapped),
            "column_drift": dg.MetadataValue.json(drift),
            "rows": mapped.contacts.height,
        }
    )


def _write_reports(
    warehouse: Warehouse, upload_id: str, checked: CheckedUpload, conflicts: pl.DataFrame
) -> tuple[Path, str | None, str | None]:
    """The upload's error report, and its merge-conflict and duplicate-split reports when there is something to
    list (formula-safe CSVs next to each other); returns their paths (the last two None when not written)."""
    report_dir = warehouse.paths.report_dir(upload_id)
    report_dir.mkdir(parents=True, exist_ok=True)
    error_report = write_error_report(checked.problems, report_dir / "errors.csv")
    split_file = None
    conflicts_file = None
    if conflicts.height:
        conflicts_file = str(write_csv_safely(conflicts, report_dir / "merge_conflicts.csv"))
    if checked.duplicates.split_rows.height:
        split_file = str(write_csv_safely(checked.duplicates.split_rows, report_dir / "duplicates.csv"))
    return error_report, split_file, conflicts_file


def _validated_results(
    kept: pl.DataFrame, counts: dict[str, Any], overview: dict[str, Any], error_report: Path
) -> Iterator[dg.MaterializeResult]:
    """The two materializations of validated_contacts: kept rows (masked preview) and rejected rows."""
    preview = mask_frame(kept.head(5).select(_preview_columns(kept)))
    yield dg.MaterializeResult(
        asset_key="validated_contacts",
        metadata={
            "rows": kept.height,
            "duplicates": counts["duplicates"],
            "phone_types": dg.MetadataValue.json(_value_counts(kept, "phone_type")),
            "timezone_sources": dg.MetadataValue.json(_value_counts(kept, "timezone_source")),
            "preview_masked": frame_markdown(preview),
            **{
                k: overview[k]
                for k in ("import_status", "phone_types_and_timezones", "import_summary")
                if k in overview
            },
        },
    )
    yield dg.MaterializeResult(
        asset_key="rejected_rows",
        metadata={
            "rejected_rows": counts["rejected"],
            "problems_by_code": dg.MetadataValue.json(counts["problems_by_code"]),
            "error_report": dg.MetadataValue.path(str(error_report)),
            **{k: overview[k] for k in ("import_status", "rejected_by_code", "import_summary") if k in overview},
        },
    )


def _kept_counts(kept: pl.DataFrame) -> dict[str, Any]:
    """What the upload record keeps about the kept rows: how many, and their phone types and time zones."""
    return {
        "valid_rows": kept.height,
        "phone_types": _value_counts(kept, "phone_type"),
        "timezone_sources": _value_counts(kept, "timezone_source"),
        "timezones": _value_counts(kept, "timezone"),
    }


def _value_counts(df: pl.DataFrame, column: str) -> dict[str, int]:
    if column not in df.columns or df.is_empty():
        return {}
    counts = df.group_by(column).agg(pl.len().alias("n")).sort("n", descending=True)
    return {str(k): int(v) for k, v in counts.iter_rows()}


def _preview_columns(df: pl.DataFrame) -> list[str]:
    wanted = ("row_number", "first_name", "last_name", "phone_e164", "phone_type", "timezone", "timezone_source")
    return [c for c in wanted if c in df.columns]


def _gate_result(warehouse: Warehouse, upload_id: str, result: GateResult) -> dg.AssetCheckResult:
    """The gate's outcome recorded in one transaction (with its Data Docs, and the upload blocked if it failed)."""
    record: dict = {"data_docs": result.docs_path} if result.docs_path else {}
    if not result.passed:
        record.update(status="blocked", blocked_by={"gate": result.name, "detail": result.detail})
    with warehouse.transaction() as con:
        record_check(con, upload_id, result.name, result.passed, result.detail, result.metadata)
        if record:
            update_upload(con, upload_id, **record)
        if not result.passed:
            summary = upload_summary(con, upload_id)
    metadata: dict = {k: v for k, v in result.metadata.items()}
    metadata["detail"] = result.detail
    if result.docs_path:
        metadata["data_docs"] = dg.MetadataValue.path(result.docs_path)
    if not result.passed:
        # a blocked upload says why, in words, right on the check (downstream steps are skipped)
        overview = upload_metadata(summary)
        metadata.update(import_status=overview["import_status"], import_summary=overview["import_summary"])
    description = result.detail if result.passed else f"blocked by {result.name}: {result.detail}"
    return dg.AssetCheckResult(passed=result.passed, metadata=metadata, description=description)


@dg.asset_check(
    asset="validated_contacts",
    blocking=True,
    partitions_def=upload_partitions,
    automation_condition=runs_with_its_asset(),
    description="Pandera (polars) schema of validated contacts: types, E.164 pattern, IANA zones, unique key, "
    "non-null rules. Blocks the upload from the contact book and audiences when it fails.",
)
@withhold_error_details
def pandera_validated_contacts(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    upload_id = context.partition_key
    with warehouse.connect() as con:
        valid = read_validated_rows(con, upload_id)
    return _gate_result(warehouse, upload_id, pandera_gate(valid))


@dg.asset_check(
    asset="validated_contacts",
    blocking=True,
    partitions_def=upload_partitions,
    automation_condition=runs_with_its_asset(),
    description="Great Expectations suite on the upload: row count equals --expected-count when given, rejected "
    "share under the campaign's limit, required fields mapped. Writes HTML Data Docs per upload.",
)
@withhold_error_details
def great_expectations_upload(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
    upload_id = context.partition_key
    with warehouse.connect() as con:
        upload = load_upload(con, upload_id)
    campaign = load_campaign(upload.campaign, create=True)
    summary = upload.summary
    result = great_expectations_gate(
        upload_id=upload_id,
        rows_read=int(summary.get("rows_read", 0)),
        rejected=int(summary.get("rejected", 0)),
        expected_count=upload.options.expected_count,
        max_rejected_share=campaign.max_rejected_share,
        mapped_fields=sorted(set(summary.get("mapping", {}).get("fields", {}).values())),
        docs_root=warehouse.paths.gx,
        drift_unmapped=(summary.get("column_drift") or {}).get("unmapped_fields") or [],
    )
    return _gate_result(warehouse, upload_id, result)

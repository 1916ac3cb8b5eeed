"""raw_upload: the stored original file read into text rows, replaced per upload in one transaction."""

import time
from pathlib import Path

import dagster as dg

from callaro_pipeline.core.errors import CallaroError
from callaro_pipeline.core.reading import read_table
from callaro_pipeline.core.table_frames import ReadLimits, check_size
from callaro_pipeline.defs.failures import withhold_error_details
from callaro_pipeline.defs.partitions import upload_partitions
from callaro_pipeline.storage.stage_tables import store_raw_table
from callaro_pipeline.storage.uploads import load_upload, update_upload
from callaro_pipeline.storage.warehouse import Warehouse


def fail_upload(warehouse: Warehouse, upload_id: str, stage: str, error: CallaroError) -> dg.Failure:
    """Record a user-input failure on the upload and turn it into a clean Dagster failure (no traceback)."""
    with warehouse.transaction() as con:
        update_upload(
            con,
            upload_id,
            status="failed",
            failure={"stage": stage, "message": str(error), "exit_code": error.exit_code},
        )
    return dg.Failure(description=f"{stage}: {error}", metadata={"stage": stage}, allow_retries=False)


@dg.asset(
    partitions_def=upload_partitions,
    group_name="ingest",
    kinds={"duckdb", "polars"},
    owners=["team:data"],
    description=(
        "The original upload (kept byte for byte with its sha256) read as text: encoding, delimiter and header "
        "row detected, lossless spreadsheet damage repaired, every row keeps its spreadsheet row_number."
    ),
)
@withhold_error_details
def raw_upload(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    upload_id = context.partition_key
    started = time.perf_counter()
    with warehouse.connect() as con:
        upload = load_upload(con, upload_id)
    try:
        limits = ReadLimits.from_env()  # CALLARO_MAX_UPLOAD_BYTES / _ROWS / _COLUMNS
        stored = Path(upload.stored_path)
        check_size(stored.stat().st_size, limits)  # before the bytes are read into memory
        table = read_table(stored.read_bytes(), upload.original_name, sheet=upload.options.sheet, limits=limits)
    except CallaroError as error:
        raise fail_upload(warehouse, upload_id, "reading the file", error) from None
    store_raw_table(warehouse, upload_id, table, time.perf_counter() - started)
    return dg.MaterializeResult(
        metadata={
            "rows": table.rows.height,
            "malformed_rows": table.malformed.height,
            "columns": len(table.columns),
            "encoding": str(table.encoding),
            "delimiter": repr(table.delimiter),
            "header_row": table.header_row,
            "repaired_cells": table.repaired_cells,
            "sha256": upload.sha256,
        }
    )

"""The per-upload stage tables the ingest and validate assets write, each replaced in one transaction."""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl

from callaro_pipeline.core.table_frames import RawTable
from callaro_pipeline.storage.uploads import update_upload, upload_summary
from callaro_pipeline.storage.warehouse import Warehouse, read_raw_rows, replace_partition, replace_raw_rows, stage


def store_raw_table(warehouse: Warehouse, upload_id: str, table: RawTable, read_seconds: float) -> None:
    """raw_columns, raw_rows and raw_malformed of one upload, and what reading found on its upload record."""
    columns = pl.DataFrame(
        {"position": list(range(len(table.columns))), "name": table.columns},
        schema={"position": pl.Int32, "name": pl.Utf8},
    )
    with warehouse.transaction() as con:
        replace_partition(con, "raw_columns", upload_id, columns)
        replace_raw_rows(con, upload_id, table.rows, table.columns)
        replace_partition(con, "raw_malformed", upload_id, table.malformed)
        update_upload(
            con,
            upload_id,
            rows_read=table.rows.height + table.malformed.height,
            file={
                "encoding": table.encoding,
                "delimiter": table.delimiter,
                "header_row": table.header_row,
                "sheet": table.sheet,
                "columns": len(table.columns),
                "malformed_rows": table.malformed.height,
                "repaired_cells": table.repaired_cells,
            },
            timings={"read_seconds": round(read_seconds, 3)},
        )


def read_raw_upload(
    con: duckdb.DuckDBPyConnection, upload_id: str, campaign: str
) -> tuple[list[str], pl.DataFrame, tuple[Any, Any] | None]:
    """An upload's raw columns (in file order), its raw rows, and the campaign's remembered
    (last_mapping, last_columns), None for a new campaign."""
    columns = [
        r[0]
        for r in con.execute(
            "SELECT name FROM raw_columns WHERE upload_id = ? ORDER BY position", [upload_id]
        ).fetchall()
    ]
    rows = read_raw_rows(con, upload_id, columns)
    return columns, rows, remembered_campaign_state(con, campaign)


def remembered_campaign_state(con: duckdb.DuckDBPyConnection, campaign: str) -> tuple[Any, Any] | None:
    """The campaign's remembered (last_mapping, last_columns) JSON texts, None for a new campaign."""
    state = con.execute(
        "SELECT last_mapping, last_columns FROM campaign_state WHERE campaign = ?", [campaign]
    ).fetchone()
    return (state[0], state[1]) if state else None


def read_mapped_upload(con: duckdb.DuckDBPyConnection, upload_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """An upload's mapped contacts (in row order) and its malformed rows (row_number, message)."""
    mapped = con.execute(
        "SELECT * EXCLUDE (upload_id) FROM mapped_contacts WHERE upload_id = ? ORDER BY row_number", [upload_id]
    ).pl()
    malformed = con.execute("SELECT row_number, message FROM raw_malformed WHERE upload_id = ?", [upload_id]).pl()
    return mapped, malformed


def campaign_contacts_sharing_keys(
    warehouse: Warehouse, keys: pl.DataFrame, campaign: str, upload_id: str
) -> pl.DataFrame:
    """The campaign's contacts (from its other uploads) sharing a phone or external_id with the valid rows:
    only those can make a row a duplicate, and a campaign of millions is not read whole for each upload."""
    with warehouse.connect() as con:
        stage(con, "_upload_keys", keys)
        # the book filtered by the upload's keys first (hash tables of the upload's size), then its links
        return con.execute(
            """
            WITH matched AS MATERIALIZED (
                SELECT contact_id, phone_e164, phone_extension, external_id FROM contacts
                WHERE phone_e164 IN (SELECT phone_e164 FROM _upload_keys)
                   OR external_id IN (SELECT external_id FROM _upload_keys WHERE external_id IS NOT NULL)
            )
            SELECT m.phone_e164, m.phone_extension, m.external_id, cc.upload_id
            FROM campaign_contacts cc JOIN matched m USING (contact_id)
            WHERE cc.campaign = ? AND cc.upload_id <> ?
            """,
            [campaign, upload_id],
        ).pl()


def store_validated_upload(
    warehouse: Warehouse, upload_id: str, kept: pl.DataFrame, problems: pl.DataFrame, record: dict[str, Any]
) -> dict[str, Any]:
    """validated_contacts and rejected_rows of one upload and `record` on its upload record, in one transaction;
    returns the upload's summary as committed."""
    with warehouse.transaction() as con:
        replace_partition(con, "validated_contacts", upload_id, kept)
        replace_partition(con, "rejected_rows", upload_id, problems)
        update_upload(con, upload_id, **record)
        return upload_summary(con, upload_id)


def read_validated_rows(con: duckdb.DuckDBPyConnection, upload_id: str) -> pl.DataFrame:
    """The upload's validated contacts in row order, without the partition column."""
    return con.execute(
        "SELECT * EXCLUDE (upload_id) FROM validated_contacts WHERE upload_id = ? ORDER BY row_number", [upload_id]
    ).pl()

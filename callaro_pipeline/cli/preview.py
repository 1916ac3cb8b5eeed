"""`callaro preview`: what an import would do — mapping, first rows as imported, problems — writing nothing."""

from __future__ import annotations

import os
import re
from pathlib import Path

import polars as pl

from callaro_pipeline.core.config import campaign_path, default_campaign, load_campaign, load_custom_fields
from callaro_pipeline.core.errors import UnusableInput
from callaro_pipeline.core.flow import check_upload, map_upload
from callaro_pipeline.core.landing import check_source_file, open_regular_file
from callaro_pipeline.core.reading import read_table
from callaro_pipeline.core.table_frames import ReadLimits, check_size
from callaro_pipeline.core.uploads import UploadOptions
from callaro_pipeline.storage.contact_book import campaign_contact_keys
from callaro_pipeline.storage.stage_tables import remembered_campaign_state
from callaro_pipeline.storage.warehouse import Warehouse

SHOWN_FIELDS = (
    "row_number",
    "first_name",
    "last_name",
    "full_name",
    "phone_e164",
    "phone_extension",
    "email",
    "timezone",
    "timezone_source",
)


def _campaign_state(campaign: str) -> tuple[str | None, str | None, pl.DataFrame | None]:
    """The campaign's remembered mapping, last columns and existing contacts, read without a lock from the last
    committed snapshot, so a preview never waits for an import or creates anything."""
    with Warehouse().read() as con:
        state = remembered_campaign_state(con, campaign)
        existing = campaign_contact_keys(con, campaign)
    return (state[0], state[1], existing) if state else (None, None, existing)


def preview_file(
    file: Path,
    *,
    campaign: str,
    mapping: Path | None,
    rows: int,
    sheet: str | None,
    default_region: str | None = None,
) -> str:
    check_source_file(file)  # a regular file: links, FIFOs and devices are refused
    # a brand-new campaign is previewed with what an import would give it (the compliance owner's defaults, else
    # the built-in safe ones), never saved: a preview writes nothing
    is_new = not campaign_path(campaign).exists()
    config = default_campaign(campaign) if is_new else load_campaign(campaign)
    registry = load_custom_fields()
    if default_region is not None and not re.fullmatch(r"[A-Za-z]{2}", default_region):
        raise UnusableInput(f"--default-region must be a two-letter country code, not {default_region[:20]!r}")
    options = UploadOptions(
        mapping_path=str(mapping.resolve()) if mapping else None,
        sheet=sheet,
        default_region=default_region.upper() if default_region else None,
    )
    limits = ReadLimits.from_env()
    check_size(file.stat().st_size, limits)
    with os.fdopen(open_regular_file(file), "rb") as stream:
        data = stream.read()
    table = read_table(data, file.name, sheet=sheet, limits=limits)
    remembered, previous_columns, existing = _campaign_state(campaign)
    mapped = map_upload(
        table.rows,
        table.columns,
        campaign=config,
        options=options,
        registry=registry,
        remembered_mapping=remembered,
        previous_columns=previous_columns,
    )
    checked = check_upload(
        mapped.contacts,
        mapped.mapping,
        campaign=config,
        options=options,
        registry=registry,
        malformed=table.malformed,
        existing=existing,
    )
    lines = [
        f"file       {file.name}: {table.rows.height + table.malformed.height} rows, encoding {table.encoding}, "
        f"delimiter {table.delimiter!r}, header on row {table.header_row}",
        f"campaign   {config.name} ({'new: an import creates it with the defaults' if is_new else 'configured'}): "
        f"duplicates {config.duplicates}, requires national DNC list {'yes' if config.require_national_dnc else 'no'}"
        f", consent {'yes' if config.require_consent else 'no'}",
        f"mapping    ({mapped.mapping.source})",
    ]
    lines += [f"  {source!r:>28} -> {target}" for source, target in mapped.mapping.fields.items()]
    if mapped.mapping.unmapped:
        lines.append("unmapped   " + ", ".join(repr(c) for c in mapped.mapping.unmapped))
    if mapped.drift.changed:
        lines.append(
            f"drift      added {mapped.drift.added}, missing {mapped.drift.missing}, renamed {mapped.drift.renamed}"
        )
    if mapped.drift.blocking_reason():
        lines.append(f"blocked    an import would be blocked: {mapped.drift.blocking_reason()}")
    if table.footer_rows:
        lines.append(f"footer     {table.footer_rows} summary line(s) under the data left out (not rows)")
    kept = checked.kept
    shown = [c for c in SHOWN_FIELDS if c in kept.columns]
    with pl.Config(tbl_rows=rows, tbl_cols=len(shown), fmt_str_lengths=40, tbl_width_chars=200):
        lines.append(f"first rows as they would be imported ({min(rows, kept.height)} of {kept.height}):")
        lines.append(str(kept.select(shown).head(rows)))
        problems = checked.problems
        counts = checked.counts()
        lines.append(
            f"would import {kept.height}, reject {counts['rejected']}, skip {counts['duplicates']} duplicates "
            "(DNC suppression is applied at import; the consent a campaign requires, by its audience)"
        )
        if problems.height:
            lines.append("problems:")
            lines.append(str(problems.select("row_number", "column", "code", "message").head(rows)))
    return "\n".join(lines)

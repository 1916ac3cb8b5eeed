"""The per-upload flow as pure functions, shared by the Dagster assets and the `preview` dry run."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from callaro_pipeline.core.applying_mapping import apply_mapping
from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.column_drift import ColumnDrift, column_drift, lost_fields
from callaro_pipeline.core.config import Campaign
from callaro_pipeline.core.duplicates import DuplicateResult, apply_duplicate_policy
from callaro_pipeline.core.header_matching import auto_map
from callaro_pipeline.core.mapping import Mapping, source_columns
from callaro_pipeline.core.mapping_files import load_mapping_file
from callaro_pipeline.core.project_paths import config_dir
from callaro_pipeline.core.uploads import UploadOptions
from callaro_pipeline.core.validation import ValidationResult, validate_contacts


@dataclass
class MappedUpload:
    mapping: Mapping
    drift: ColumnDrift
    contacts: pl.DataFrame


@dataclass
class CheckedUpload:
    validation: ValidationResult
    duplicates: DuplicateResult

    @property
    def kept(self) -> pl.DataFrame:
        return self.duplicates.kept

    @property
    def problems(self) -> pl.DataFrame:
        return pl.concat([self.validation.problems, self.duplicates.problems], how="diagonal_relaxed").sort(
            "row_number", maintain_order=True
        )

    def counts(self) -> dict:
        rejected_rows = self.validation.problems.get_column("row_number").n_unique()
        by_code = (
            self.problems.group_by("code").agg(pl.len().alias("n")).sort("code").iter_rows()
            if self.problems.height
            else []
        )
        return {
            "rejected": rejected_rows,
            "duplicates": self.validation.valid.height - self.kept.height,
            "skipped_existing": self.duplicates.skipped_existing,
            "problems_by_code": dict(by_code),
            "merge_conflicts": self.duplicates.conflicts.height,
        }


def resolve_mapping_path(path: str | None) -> Path | None:
    if not path:
        return None
    candidate = Path(path)
    return candidate if candidate.is_absolute() else config_dir() / candidate


def choose_mapping(
    columns: list[str],
    *,
    campaign: Campaign,
    options: UploadOptions,
    registry: dict[str, CustomField],
    remembered: Mapping | None,
) -> Mapping:
    """An explicit mapping file (upload option, then campaign setting) wins; else the campaign's last mapping
    for the columns it knows, then automatic matching by name and aliases."""
    mapping_file = resolve_mapping_path(options.mapping_path or campaign.mapping)
    if mapping_file is not None:
        return load_mapping_file(mapping_file, columns, registry)
    return auto_map(columns, registry, remembered=remembered)


def map_upload(
    rows: pl.DataFrame,
    columns: list[str],
    *,
    campaign: Campaign,
    options: UploadOptions,
    registry: dict[str, CustomField],
    remembered_mapping: str | None,
    previous_columns: str | None,
) -> MappedUpload:
    remembered = Mapping.from_json(remembered_mapping) if remembered_mapping else None
    mapping = choose_mapping(columns, campaign=campaign, options=options, registry=registry, remembered=remembered)
    previous = json.loads(previous_columns) if previous_columns else None
    drift = column_drift(previous, columns)
    drift.unmapped_fields = lost_fields(remembered, mapping, previous)  # these block the upload (a gate)
    return MappedUpload(mapping=mapping, drift=drift, contacts=apply_mapping(rows, mapping, registry))


def check_upload(
    mapped: pl.DataFrame,
    mapping: Mapping,
    *,
    campaign: Campaign,
    options: UploadOptions,
    registry: dict[str, CustomField],
    malformed: pl.DataFrame | None,
    existing: pl.DataFrame | Callable[[pl.DataFrame], pl.DataFrame] | None,
) -> CheckedUpload:
    region = (options.default_region or mapping.default_region or campaign.default_region or "US").upper()
    policy = options.duplicates or mapping.duplicates or campaign.duplicates
    validation = validate_contacts(
        mapped,
        source_columns=source_columns(mapping),
        default_region=region,
        registry=registry,
        malformed=malformed,
    )
    if callable(existing):  # the campaign's contacts that share a phone or external_id with the valid rows
        existing = existing(validation.valid.select("phone_e164", "external_id"))
    duplicates = apply_duplicate_policy(
        validation.valid, policy=policy, existing=existing, source_columns=source_columns(mapping)
    )
    return CheckedUpload(validation=validation, duplicates=duplicates)


CONFLICT_REPORT_COLUMNS = ["row_number", "field", "kept_row", "kept_value", "other_row", "other_value"]


def conflict_report(valid: pl.DataFrame, conflicts: pl.DataFrame) -> pl.DataFrame:
    """Policy merge: every conflicting value, one line per (merged contact, field, other row) with the value
    kept and the value folded away, as text (lists joined with `; `, custom fields by their key). For the
    upload's report file, which holds values like the error report; never for logs or metadata."""
    from callaro_pipeline.core.mapping import CUSTOM_PREFIX

    if conflicts.is_empty():
        return pl.DataFrame(schema=dict.fromkeys(CONFLICT_REPORT_COLUMNS, pl.Utf8)).with_columns(
            pl.col("row_number", "kept_row", "other_row").cast(pl.Int64)
        )
    rows_needed = set(conflicts.get_column("kept_row")) | set(conflicts.get_column("other_row"))
    source = valid.filter(pl.col("row_number").is_in(list(rows_needed)))
    customs = {
        row: json.loads(text or "{}")
        for row, text in source.select("row_number", "custom_fields").iter_rows()
        if "custom_fields" in source.columns
    }
    by_row = {row["row_number"]: row for row in source.iter_rows(named=True)}

    def text(row: int, field: str) -> str | None:
        if field.startswith(CUSTOM_PREFIX):
            value = customs.get(row, {}).get(field[len(CUSTOM_PREFIX) :])
        else:
            value = by_row.get(row, {}).get(field)
        if value is None:
            return None
        if isinstance(value, list):
            return "; ".join(str(v) for v in value)
        return str(value)

    lines = [
        (number, field, kept, text(kept, field), other, text(other, field))
        for number, field, kept, other in conflicts.select("row_number", "field", "kept_row", "other_row").iter_rows()
    ]
    return pl.DataFrame(
        lines,
        schema={
            "row_number": pl.Int64,
            "field": pl.Utf8,
            "kept_row": pl.Int64,
            "kept_value": pl.Utf8,
            "other_row": pl.Int64,
            "other_value": pl.Utf8,
        },
        orient="row",
    )

"""The Great Expectations gate: upload-level rules on a one-row summary of the upload, fed through suite parameters."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callaro_pipeline.core import schema
from callaro_pipeline.core.project_paths import check_name

if TYPE_CHECKING:
    from collections.abc import Sequence


from callaro_pipeline.core.gates import GX_GATE, GateResult, GxOutcome, MetadataValue
from callaro_pipeline.core.gx_side_process import validate_in_side_process
from callaro_pipeline.core.gx_suite import validate_upload_summary

IDENTITY_FIELDS = schema.IDENTITY_FIELDS


def great_expectations_gate(
    *,
    upload_id: str,
    rows_read: int,
    rejected: int,
    expected_count: int | None,
    max_rejected_share: float,
    mapped_fields: list[str],
    docs_root: Path,
    drift_unmapped: Sequence[Sequence[str]] = (),
) -> GateResult:
    docs_dir = Path(docs_root) / check_name(upload_id, "upload id")
    summary = upload_summary(rows_read, rejected, mapped_fields)
    parameters = suite_parameters(expected_count, max_rejected_share)
    started = time.perf_counter()
    outcome = validate_in_side_process(summary, parameters, docs_dir, upload_id)
    if outcome is None:
        outcome = validate_upload_summary(summary, parameters, docs_dir, upload_id)
    inputs = UploadFigures(rows_read, rejected, expected_count, max_rejected_share, len(set(mapped_fields)))
    result = gx_gate_result(outcome, inputs, docs_dir / "index.html")
    result.metadata["gx_seconds"] = round(time.perf_counter() - started, 3)
    if drift_unmapped:  # a recurring file whose drift leaves a field of its last mapping unmapped: blocked
        from callaro_pipeline.core.column_drift import ColumnDrift

        reason = ColumnDrift(unmapped_fields=[(str(f), str(c)) for f, c in drift_unmapped]).blocking_reason()
        result.detail = str(reason) if result.passed else f"{reason}; {result.detail}"
        result.passed = False
        result.metadata["drift_unmapped_fields"] = ",".join(str(f) for f, _ in drift_unmapped)
    return result


@dataclass(frozen=True)
class UploadFigures:
    rows_read: int
    rejected: int
    expected_count: int | None
    max_rejected_share: float
    mapped_fields: int

    @property
    def rejected_share(self) -> float:
        return rejected_share(self.rows_read, self.rejected)


def gx_gate_result(outcome: GxOutcome, figures: UploadFigures, docs_index: Path) -> GateResult:
    """A suite can report success with nothing evaluated, so zero expectations is a failure too."""
    failed_rules = [rule for rule, ok in outcome.rule_success.items() if not ok]
    passed = outcome.success and outcome.evaluated > 0 and not failed_rules
    if outcome.evaluated == 0:
        detail = "the Great Expectations suite evaluated no expectations, so the upload cannot be trusted"
    elif passed:
        detail = gx_pass_sentence(figures)
    else:
        detail = "; ".join(gx_failure_phrase(rule, figures) for rule in failed_rules) or "the upload suite failed"
    metadata: dict[str, MetadataValue] = {
        "expectations_evaluated": outcome.evaluated,
        "expectations_failed": len(failed_rules),
        "failed_rules": ",".join(failed_rules),
        "rows_read": figures.rows_read,
        "rejected": figures.rejected,
        "rejected_share": round(figures.rejected_share, 6),
        "max_rejected_share": figures.max_rejected_share,
        "mapped_fields": figures.mapped_fields,
    }
    if figures.expected_count is not None:
        metadata["expected_count"] = figures.expected_count
    return GateResult(GX_GATE, passed, detail, metadata, str(docs_index) if docs_index.is_file() else None)


def rejected_share(rows_read: int, rejected: int) -> float:
    return rejected / rows_read if rows_read > 0 else 0.0


def upload_summary(rows_read: int, rejected: int, mapped_fields: list[str]) -> dict[str, list[Any]]:
    """One row describing the upload; each mapped field becomes a `mapped__<field>` column."""
    identity_mapped = sum(1 for name in IDENTITY_FIELDS if name in mapped_fields)
    return {
        "rows_read": [rows_read],
        "rejected": [rejected],
        "rejected_share": [rejected_share(rows_read, rejected)],
        "identity_fields_mapped": [identity_mapped],
        **{f"mapped__{name}": [True] for name in sorted(set(mapped_fields))},
    }


def suite_parameters(expected_count: int | None, max_rejected_share: float) -> dict[str, Any]:
    """Without an expected count the row-count rule only asks for at least one row."""
    return {
        "rows_read_min": 1 if expected_count is None else expected_count,
        "rows_read_max": expected_count,
        "max_rejected_share": max_rejected_share,
    }


def percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def limit_percent(share: float) -> str:
    return f"{share * 100:g}%"


def gx_pass_sentence(figures: UploadFigures) -> str:
    count = f"{figures.rows_read:,} rows read" + (" as expected" if figures.expected_count is not None else "")
    limit = limit_percent(figures.max_rejected_share)
    return f"{count}, rejected share {percent(figures.rejected_share)} within the campaign limit of {limit}, required fields mapped"


def gx_failure_phrase(rule: str, figures: UploadFigures) -> str:
    if rule == "row_count" and figures.expected_count is not None:
        return f"{figures.rows_read:,} rows read but {figures.expected_count:,} were expected"
    if rule == "row_count":
        return "the upload has no data rows"
    if rule == "rejected_share":
        limit = limit_percent(figures.max_rejected_share)
        return f"rejected share {percent(figures.rejected_share)} exceeds the campaign limit of {limit}"
    if rule.endswith("_mapped") and rule.removesuffix("_mapped") in schema.REQUIRED_FIELDS:
        return f"no column is mapped to the required field {rule.removesuffix('_mapped')}"
    if rule == "identity_mapped":
        return "no column is mapped to any of " + ", ".join(IDENTITY_FIELDS)
    return f"expectation {rule} failed"

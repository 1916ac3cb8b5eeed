"""Blocking quality gates of an upload: Pandera on the validated contacts, Great Expectations on its aggregates.

Both gates report counts and words only: failure cases carry phone numbers and names, so they never leave
this module. Great Expectations sees a one-row summary of the upload, never the rows themselves (a pandas
copy of a large upload costs seconds in GX; the row-level rules are Pandera's job, on polars).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callaro_pipeline.core import schema

PANDERA_GATE = "pandera_validated_contacts"
GX_GATE = "great_expectations_upload"
GE_GATE = GX_GATE  # the name other modules import
GX_SUITE_NAME = "callaro_upload_gate"
# The registry's validated fields without a rule of their own: text (or JSON text) that may be empty.
OPTIONAL_TEXT_COLUMNS = schema.names(
    tuple(
        f
        for f in schema.fields(table="validated_contacts", gated=True, rule=None)
        if f.type in ("text", "json") and f.nullable
    )
)

MetadataValue = float | int | str


@dataclass
class GateResult:
    name: str
    passed: bool
    detail: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    docs_path: str | None = None


# The suite is built once per process and fed per-upload values through suite parameters.
RULE_KEY = "callaro_rule"


@dataclass(frozen=True)
class GxOutcome:
    success: bool
    evaluated: int
    rule_success: dict[str, bool]

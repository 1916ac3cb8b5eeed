"""Column drift: how an upload's columns differ from the campaign's remembered ones (lost fields, renames)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rapidfuzz import fuzz

from callaro_pipeline.core.applying_mapping import standard_field_for_header
from callaro_pipeline.core.mapping import (
    EXACT_SCORE,
    RENAME_THRESHOLD,
    Mapping,
    normalize_header,
    shortened_for_message,
)


@dataclass
class ColumnDrift:
    added: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    """(previous name, current name)"""
    unmapped_fields: list[tuple[str, str]] = field(default_factory=list)
    """(field, its column last time): fields the campaign's last mapping filled that this file leaves unmapped
    (set by `lost_fields`); they block the upload"""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.missing or self.renamed or self.unmapped_fields)

    def as_dict(self) -> dict[str, object]:
        return {
            "added": self.added,
            "missing": self.missing,
            "renamed": self.renamed,
            "unmapped_fields": [list(pair) for pair in self.unmapped_fields],
        }

    def blocking_reason(self) -> str | None:
        """Why the drift blocks the upload, in words (None when it does not)."""
        if not self.unmapped_fields:
            return None
        lost = ", ".join(
            f"{name} (was column {shortened_for_message(column)!r})" for name, column in self.unmapped_fields
        )
        return (
            f"column drift since the campaign's last upload leaves {lost} unmapped; fix the file, or import it "
            "with --mapping naming its columns to accept the new layout"
        )


def lost_fields(
    remembered: Mapping | None, mapping: Mapping, previous_columns: list[str] | None
) -> list[tuple[str, str]]:
    """Fields the campaign's last mapping filled from a column that this upload no longer maps to anything.
    Only for a recurring file mapped by name (a mapping file given for the upload or the campaign is explicit,
    and one naming a column the file lacks is refused anyway) and only when there was a previous upload."""
    if remembered is None or previous_columns is None or mapping.source == "file":
        return []
    now_mapped = set(mapping.fields.values())
    lost: dict[str, str] = {}
    for column, target in remembered.fields.items():
        if target not in now_mapped and target not in lost:
            lost[target] = column
    return sorted(lost.items())


def _rename_score(old: str, new: str) -> float:
    """How sure we are that `new` is `old` renamed: 100 when both are aliases of one field, else name similarity."""
    field_of_old = standard_field_for_header(old)
    if field_of_old is not None and field_of_old == standard_field_for_header(new):
        return EXACT_SCORE
    return fuzz.token_sort_ratio(normalize_header(old), normalize_header(new))


def column_drift(previous: list[str] | None, current: list[str]) -> ColumnDrift:
    """How a recurring file's header changed since the last upload (no drift on a campaign's first upload).
    A vanished and a new column count as a rename when both mean the same field or their names are close."""
    if previous is None:
        return ColumnDrift()
    added = [column for column in current if column not in previous]
    missing = [column for column in previous if column not in current]
    pairs = sorted(
        ((-_rename_score(old, new), i, j) for i, old in enumerate(missing) for j, new in enumerate(added)),
    )
    renamed: list[tuple[str, str]] = []
    for negative_score, i, j in pairs:
        old, new = missing[i], added[j]
        if -negative_score >= RENAME_THRESHOLD and all(old != o and new != n for o, n in renamed):
            renamed.append((old, new))
    return ColumnDrift(
        added=[column for column in added if all(column != new for _, new in renamed)],
        missing=[column for column in missing if all(column != old for old, _ in renamed)],
        renamed=renamed,
    )

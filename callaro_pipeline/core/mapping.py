"""Source columns to contact fields: a mapping file, the campaign's remembered mapping, or automatic matching.

Automatic matching normalizes headers (case, accents, punctuation), looks them up in a multilingual alias table,
then falls back to fuzzy matching (rapidfuzz) above a confidence threshold. A column is never guessed into a
field below the threshold and two columns never feed one field: what cannot be mapped is reported as unmapped.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field

from callaro_pipeline.core.errors import MappingError

CUSTOM_PREFIX = "custom."
EXACT_SCORE = 100.0
RENAME_THRESHOLD = 80.0


@dataclass
class Mapping:
    fields: dict[str, str]
    """source column -> standard field or `custom.<name>`"""
    unmapped: list[str]
    """source columns mapped to nothing: reported, never imported"""
    source: str
    """where it came from: "file", "auto" (matched by name) or "remembered" (the campaign's last mapping)"""
    scores: dict[str, float]
    """auto-match confidence (0-100) per mapped source column"""
    default_region: str | None = None
    duplicates: str | None = None
    phone_columns: list[str] = field(default_factory=list)
    """every source column mapped to `phone`, in priority order (the first valid number is the phone; the
    others are kept as `other_phones_e164`); empty means the one column of `fields`"""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Mapping:
        try:
            raw = json.loads(text)
            return cls(
                fields={str(k): str(v) for k, v in raw["fields"].items()},
                unmapped=[str(c) for c in raw.get("unmapped", [])],
                source=str(raw.get("source", "remembered")),
                scores={str(k): float(v) for k, v in raw.get("scores", {}).items()},
                default_region=raw.get("default_region"),
                duplicates=raw.get("duplicates"),
                phone_columns=[str(c) for c in raw.get("phone_columns") or []],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MappingError(f"stored mapping is unreadable: {exc}") from None


def shortened_for_message(text: str, limit: int = 80) -> str:
    """A user-given name or value cut for a message: 80 characters and an ellipsis."""
    return text if len(text) <= limit else text[:limit] + "\u2026"


def normalize_header(header: str) -> str:
    """`"  Téléphone-Nr. "` -> `"telephone nr"`: lowercase ASCII words separated by single spaces."""
    decomposed = unicodedata.normalize("NFKD", str(header))
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[^0-9a-z#]+", " ", ascii_text).split())


def compact_header(normalized: str) -> str:
    """Spacing and `_` / `-` differences never matter: "E-mail", "email" and "e mail" are one header."""
    return normalized.replace(" ", "")


def is_custom_target(target: str) -> bool:
    return target.startswith(CUSTOM_PREFIX)


def source_columns(mapping: Mapping) -> dict[str, str]:
    """field (standard name or `custom.<name>`) -> the source column it comes from (for phone fed by several
    columns: the first in priority order)."""
    by_field: dict[str, str] = {}
    for column, target in mapping.fields.items():
        by_field.setdefault(target, column)
    if mapping.phone_columns:
        by_field["phone"] = mapping.phone_columns[0]
    return by_field


def phone_columns(mapping: Mapping) -> list[str]:
    """Every source column of `phone`, in priority order."""
    if mapping.phone_columns:
        return list(mapping.phone_columns)
    return [column for column, target in mapping.fields.items() if target == "phone"]

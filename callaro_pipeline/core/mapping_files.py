"""Mapping files (YAML/JSON) written by people: loaded, checked against the fields, and the columns they read."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from callaro_pipeline.core.campaign_settings import DUPLICATE_POLICIES, CustomField
from callaro_pipeline.core.errors import MappingError
from callaro_pipeline.core.mapping import CUSTOM_PREFIX, EXACT_SCORE, Mapping, is_custom_target, shortened_for_message
from callaro_pipeline.core.schema import STANDARD_FIELDS

# Source columns that may feed `phone` together, in priority order: the first valid number is the phone.
MULTI_SOURCE_FIELDS = ("phone",)


def check_mapping_target(target: str, column: str, registry: dict[str, CustomField]) -> None:
    if is_custom_target(target):
        name = target[len(CUSTOM_PREFIX) :]
        if name not in registry:
            declared = ", ".join(sorted(registry)) or "none"
            raise MappingError(
                f"column {column!r} maps to {target}, which is not declared in custom_fields.yaml "
                f"(declared: {declared})"
            )
    elif target not in STANDARD_FIELDS:
        hint = f" (did you mean {CUSTOM_PREFIX}{target}?)" if target in registry else ""
        raise MappingError(
            f"column {column!r} maps to unknown field {target!r}{hint}; standard fields: {', '.join(STANDARD_FIELDS)}"
        )


def load_mapping_file(path: Path, columns: list[str], registry: dict[str, CustomField]) -> Mapping:
    """Read a mapping YAML (`columns: {Source: field}`, optional `default_region`, `duplicates`) and check it
    against the file's columns and the custom-field registry. A column the file does not name stays unmapped."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"cannot read mapping file {Path(path).name}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise MappingError(f"mapping file {Path(path).name} is not valid YAML") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict):
        raise MappingError(f"mapping file {Path(path).name} must hold `columns:` mapping source columns to fields")
    fields: dict[str, str] = {}
    phone_columns: list[str] = []
    for key, value in raw["columns"].items():
        # `Source: field`, or `field: [Source, Source, ...]` for a field fed by several columns in priority order
        pairs = [(str(source), str(key)) for source in value] if isinstance(value, list) else [(str(key), value)]
        for column, target in pairs:
            if column not in columns:
                raise MappingError(
                    f"mapping file names column {shortened_for_message(column)!r}, which is not in the uploaded file"
                )
            if target is None or str(target).strip() == "":
                continue  # an explicit "import nothing from this column"
            target = str(target).strip()
            check_mapping_target(target, column, registry)
            if isinstance(value, list) and target not in MULTI_SOURCE_FIELDS:
                raise MappingError(
                    f"only {', '.join(MULTI_SOURCE_FIELDS)} may name several columns in a list, not {shortened_for_message(target)!r}"
                )
            twin = next((other for other, used in fields.items() if used == target), None)
            if twin is not None and target not in MULTI_SOURCE_FIELDS:
                raise MappingError(
                    f"columns {shortened_for_message(twin)!r} and {shortened_for_message(column)!r} are both mapped to {target}: map only one"
                )
            if column in fields and fields[column] != target:
                raise MappingError(f"column {shortened_for_message(column)!r} is mapped twice")
            fields[column] = target
            if target == "phone" and column not in phone_columns:
                phone_columns.append(column)
    default_region = raw.get("default_region")
    if default_region is not None and not re.fullmatch(r"[A-Za-z]{2}", str(default_region)):
        raise MappingError(f"mapping file default_region must be a two-letter country code, not {default_region!r}")
    duplicates = raw.get("duplicates")
    if duplicates is not None and duplicates not in DUPLICATE_POLICIES:
        raise MappingError(f"mapping file duplicates must be one of {', '.join(DUPLICATE_POLICIES)}")
    return Mapping(
        fields={column: fields[column] for column in columns if column in fields},
        unmapped=[column for column in columns if column not in fields],
        source="file",
        scores={column: EXACT_SCORE for column in fields},
        default_region=str(default_region).upper() if default_region else None,
        duplicates=str(duplicates) if duplicates else None,
        phone_columns=phone_columns if len(phone_columns) > 1 else [],
    )

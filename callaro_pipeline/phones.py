"""Phone normalization to E.164 (first version: phonenumbers once per distinct value, joined back)."""

from __future__ import annotations

import re

import phonenumbers
import polars as pl
from phonenumbers import timezone as pn_timezone

PHONE_COLUMNS = [
    "phone_e164",
    "phone_extension",
    "phone_type",
    "phone_region",
    "phone_state",
    "phone_timezones",
    "phone_error",
    "phone_error_message",
]
PHONE_SCHEMA = {
    "phone_e164": pl.Utf8,
    "phone_extension": pl.Utf8,
    "phone_type": pl.Utf8,
    "phone_region": pl.Utf8,
    "phone_state": pl.Utf8,
    "phone_timezones": pl.List(pl.Utf8),
    "phone_error": pl.Utf8,
    "phone_error_message": pl.Utf8,
}
_SCIENTIFIC = re.compile(r"^\s*[+-]?\d(?:[.,]\d+)?[eE][+]?\d+\s*$")
_TYPE_NAMES = {
    value: name.lower() for name, value in vars(phonenumbers.PhoneNumberType).items() if isinstance(value, int)
}
SPREADSHEET_DAMAGE_MESSAGE = (
    "the cell was damaged by a spreadsheet (scientific notation): re-export the file "
    "with the phone column formatted as text"
)


def normalize_one(raw: str | None, region: str) -> dict:
    """Plain phonenumbers for one value: the reference the vectorized paths must agree with."""
    if raw is None or not raw.strip():
        return _error("missing_required", "phone number is missing")
    if _SCIENTIFIC.match(raw):
        return _error("invalid_phone", SPREADSHEET_DAMAGE_MESSAGE)
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return _error("invalid_phone", f"not a phone number for region {region}")
    if not phonenumbers.is_valid_number(number):
        return _error("invalid_phone", f"not a valid number for region {region}")
    zones = [z for z in pn_timezone.time_zones_for_number(number) if z != "Etc/Unknown"]
    return {
        "phone_e164": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        "phone_extension": number.extension or None,
        "phone_type": _TYPE_NAMES.get(phonenumbers.number_type(number)),
        "phone_region": phonenumbers.region_code_for_number(number),
        "phone_state": None,
        "phone_timezones": zones,
        "phone_error": None,
        "phone_error_message": None,
    }


def _error(code: str, message: str) -> dict:
    return {name: None for name in PHONE_COLUMNS} | {
        "phone_timezones": [],
        "phone_error": code,
        "phone_error_message": message,
    }


def normalize_phones(raw: pl.Series, default_region: str = "US") -> pl.DataFrame:
    """One row per input value, same order, with PHONE_COLUMNS."""
    region = default_region.upper()
    values = raw.cast(pl.Utf8).rename("raw")
    distinct = values.unique().to_list()
    rows = [normalize_one(value, region) for value in distinct]
    table = pl.DataFrame(rows, schema=PHONE_SCHEMA).with_columns(pl.Series("raw", distinct, dtype=pl.Utf8))
    return values.to_frame().join(table, on="raw", how="left", nulls_equal=True, maintain_order="left").select(
        PHONE_COLUMNS
    )

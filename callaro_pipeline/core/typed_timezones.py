"""A time zone typed in a file, read: IANA name, Windows name, abbreviation or UTC offset, to the zones it means."""

from __future__ import annotations

import re
from functools import cache

import polars as pl

from callaro_pipeline.core.timezone_references import iana_zone_names, read_reference
from callaro_pipeline.core.zone_clocks import ZONE_LIST_TYPE, offset_zones, zone_clock

INVALID_TIMEZONE_MESSAGE = "not a recognised time zone name, abbreviation or UTC offset"
_OFFSET_PATTERN = re.compile(r"^(?:utc|gmt)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$")


def _text_key(text: str) -> str:
    key = text.lower().replace("\u2212", "-").strip()
    key = re.sub(r"\(us\s*(?:&|and)\s*canada\)", " ", key)
    key = re.sub(r"\b(?:standard|daylight|time|zone)\b", " ", key)
    key = re.sub(r"\s+", " ", key).strip()
    if re.fullmatch(r"[a-z. ]+", key) and "." in key:
        key = re.sub(r"[. ]", "", key)
    return key


@cache
def _alias_readings() -> dict[str, tuple[str, ...] | tuple[int, str]]:
    readings: dict[str, tuple] = {}
    # Windows names (CLDR windowsZones via tzlocal), keyed like typed text: "US Mountain Standard Time" ->
    # "us mountain" -> America/Phoenix. The alias file wins where both define a key.
    try:
        from tzlocal.windows_tz import win_tz
    except ImportError:  # pragma: no cover - tzlocal is a dependency
        win_tz = {}
    for name, zone in win_tz.items():
        reading = _zone_reading(zone)
        if reading:
            readings[_text_key(name)] = reading
    for row in read_reference("timezone_aliases.csv").iter_rows(named=True):
        if row["zones"]:
            readings[row["alias"]] = tuple(row["zones"].split(";"))
        else:
            readings[row["alias"]] = (_offset_minutes(row["offset"]), row["offset_kind"])
    return readings


def _offset_minutes(text: str) -> int | None:
    match = _OFFSET_PATTERN.match(text)
    if not match:
        return None
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if minutes >= 60 or (sign == "-" and hours > 12) or (sign == "+" and hours > 14):
        return None
    return (-1 if sign == "-" else 1) * (hours * 60 + minutes)


def _zone_reading(zone: str) -> tuple | None:
    """An IANA zone as a reading; a fixed-offset Etc zone becomes an offset reading (its DST-aware zones)."""
    if zone not in iana_zone_names():
        return None
    if zone.startswith("Etc/") or zone in ("UTC", "GMT", "UCT", "Zulu", "Universal", "Greenwich"):
        (offset,) = zone_clock(zone)[1]
        return (offset, "either")
    return (zone,)


@cache
def _iana_by_key() -> dict[str, str]:
    return {name.lower(): name for name in iana_zone_names()}


@cache
def read_timezone_text(text: str | None) -> tuple[str, ...] | None:
    """The zones a typed zone text stands for (several for an abbreviation or offset), () for empty text,
    None for text that cannot be read."""
    if text is None:
        return ()
    key = _text_key(text)
    if not key:
        return ()
    reading = _alias_readings().get(key)
    if reading is None:
        iana = _iana_by_key().get(key.replace(" ", "_")) or _iana_by_key().get(text.strip().lower())
        reading = _zone_reading(iana) if iana else None
    if reading is None:
        minutes = _offset_minutes(key)
        reading = (minutes, "either") if minutes is not None else None
    if reading is None:
        return None
    if isinstance(reading[0], int):
        zones = offset_zones(*reading)
        return zones or None
    return tuple(str(zone) for zone in reading)


def parse_timezone_text(values: pl.Series) -> pl.DataFrame:
    """Typed time zone text -> tz_candidates (its zones, several for an abbreviation or offset, or empty),
    tz_error ("invalid_timezone" for text that cannot be read), tz_error_message."""
    text = values.cast(pl.Utf8).rename("text").to_frame()
    distinct = text.unique()["text"].to_list()
    readings = [read_timezone_text(value) for value in distinct]
    parsed = pl.DataFrame(
        {
            "text": distinct,
            "tz_candidates": [list(reading or ()) for reading in readings],
            "tz_error": ["invalid_timezone" if reading is None else None for reading in readings],
        },
        schema={"text": pl.Utf8, "tz_candidates": ZONE_LIST_TYPE, "tz_error": pl.Utf8},
    ).with_columns(tz_error_message=pl.when(pl.col("tz_error").is_not_null()).then(pl.lit(INVALID_TIMEZONE_MESSAGE)))
    return text.join(parsed, on="text", how="left", nulls_equal=True, maintain_order="left").drop("text")

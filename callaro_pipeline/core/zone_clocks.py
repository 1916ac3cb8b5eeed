"""Zones compared by wall clock: two zones are the same when their UTC offsets agree at every instant of the span;
the zones of North America and of the world by clock, and the zones of a UTC offset."""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import cache

import polars as pl

from callaro_pipeline.core.timezone_references import iana_zone_names, read_reference, zip5_zone_table

CLOCK_SPAN = (datetime(2026, 1, 1), datetime(2029, 1, 1))
# The name used for a clock when the evidence itself names none of its zones (offset readings).
PREFERRED_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Adak",
    "America/Halifax",
    "America/Puerto_Rico",
    "America/St_Johns",
    "America/Regina",
    "America/Atikokan",
    "Pacific/Guam",
    "Pacific/Pago_Pago",
)
ZONE_LIST_TYPE = pl.List(pl.Utf8)


_CLOCK_IDS: dict[bytes, int] = {}


@cache
def _instants() -> pl.Series:
    start, end = CLOCK_SPAN
    return pl.datetime_range(start, end, "30m", time_zone="UTC", eager=True, closed="left")


@cache
def zone_clock(zone: str) -> tuple[int, frozenset[int], frozenset[int]]:
    """(clock id, standard offsets, daylight offsets) of an IANA zone over CLOCK_SPAN, offsets in minutes.

    Equal clock ids mean the same UTC offset at every half hour of the span (every transition in North
    America falls on one).
    """
    local = _instants().dt.convert_time_zone(zone)
    base = local.dt.base_utc_offset().dt.total_minutes()
    daylight = local.dt.dst_offset().dt.total_minutes()
    total = base + daylight
    digest = hashlib.sha1(total.to_numpy().tobytes()).digest()
    clock = _CLOCK_IDS.setdefault(digest, len(_CLOCK_IDS))
    return clock, frozenset(base.unique().to_list()), frozenset(total.filter(daylight != 0).unique().to_list())


def same_clock(first: str, second: str) -> bool:
    """True when the two zones keep the same wall clock over 2026-2028."""
    return zone_clock(first)[0] == zone_clock(second)[0]


def clock_classes(zones: list[str]) -> list[list[str]]:
    """The zones grouped by wall clock, in first-seen order."""
    groups: dict[int, list[str]] = {}
    for zone in zones:
        groups.setdefault(zone_clock(zone)[0], []).append(zone)
    return list(groups.values())


def _zones_in(name: str, column: str = "zones") -> set[str]:
    frame = read_reference(name)
    return {zone for value in frame[column].drop_nulls() for zone in value.split(";") if zone}


@cache
def north_american_zones() -> tuple[str, ...]:
    """Every zone the reference data can give a US / Canadian contact: the universe of offset readings."""
    zones = _zones_in("state_timezones.csv") | _zones_in("ca_postal_timezones.csv")
    zones |= _zones_in("area_code_timezones.csv")
    zones |= {zone for value in zip5_zone_table()["zones"].unique().to_list() for zone in value.split(";")}
    return tuple(sorted(zone for zone in zones if zone in iana_zone_names()))


@cache
def _world_zones() -> tuple[str, ...]:
    return tuple(
        sorted(
            zone
            for zone in iana_zone_names()
            if "/" in zone and not zone.startswith(("Etc/", "posix/", "right/", "SystemV/", "US/", "Canada/"))
        )
    )


def _representative(zones: list[str]) -> str:
    for zone in PREFERRED_ZONES:
        if zone in zones:
            return zone
    return min(zones)


@cache
def offset_zones(minutes: int, kind: str) -> tuple[str, ...]:
    """The DST-aware zones with that UTC offset ("standard", "daylight" or "either"), one name per clock.

    North American zones first; only when none has the offset, all IANA zones. Never an Etc/GMT zone.
    """
    for universe in (north_american_zones(), _world_zones()):
        matching = []
        for zone in universe:
            _, standard, daylight = zone_clock(zone)
            if (kind in ("standard", "either") and minutes in standard) or (
                kind in ("daylight", "either") and minutes in daylight
            ):
                matching.append(zone)
        if matching:
            return tuple(sorted((_representative(group) for group in clock_classes(matching)), key=zone_order))
    return ()


def zone_order(zone: str) -> tuple[int, str]:
    return (PREFERRED_ZONES.index(zone) if zone in PREFERRED_ZONES else len(PREFERRED_ZONES), zone)

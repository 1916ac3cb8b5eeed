"""Calling windows, local to the contact: legal hours, stricter state rules, the campaign's own window and days.

Rules are data (`reference/calling_rules.yaml`): 08:00-21:00 everywhere, narrowed per state (hours, per-weekday
hours, closed weekdays, closed holidays). A contact gets the rules of both its area-code state (`phone_state`)
and its address state (`state`), so the stricter wins; with several candidate time zones
(`timezone_candidates`) only instants open in every one of them count; with none it is never callable.
Hours are [start, end): at 20:59 local a 21:00 end is open, at 21:00 it is closed.

Contacts share few (zones, states) combinations, so each distinct combination is computed once in Python
with zoneinfo and joined back. Local times are turned into UTC per calendar day, taking the later instant
for an opening and the earlier for a closing when a DST change makes a local time ambiguous or skipped.

SQL ("who in campaign X may be called at T"): `call_windows` precomputes each audience member's open UTC
intervals for the next 14 days into `audience_call_windows`, and the table macro
`callable_contacts(campaign, ts)` (sql/20_dnc.sql) reads them. ICU time-zone functions do work in the
bundled DuckDB, but the rules above would then exist twice (Python and SQL); with precomputed intervals this
module is the only implementation, and an audience not rebuilt for 14 days has no open interval left, so it
fails closed.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, reduce
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import yaml

from callaro_pipeline.config import WEEKDAYS, CallingWindow
from callaro_pipeline.errors import ConfigError

RULES_PATH = Path(__file__).parent / "reference" / "calling_rules.yaml"
HORIZON_DAYS = 14
UTC_DATETIME = pl.Datetime("us", "UTC")

Interval = tuple[datetime, datetime]
Hours = tuple[int, int]  # minutes after local midnight, [start, end)


@dataclass(frozen=True)
class HoursRule:
    """One layer of restrictions: the legal default, a state, or the campaign's window."""

    hours: Hours
    day_hours: dict[str, Hours]
    closed_days: frozenset[str]
    holiday_calendars: tuple[str, ...] = ()

    def hours_on(self, day: date) -> Hours | None:
        weekday = WEEKDAYS[day.weekday()]
        if weekday in self.closed_days or any(day in holiday_dates(name, day.year) for name in self.holiday_calendars):
            return None
        return self.day_hours.get(weekday, self.hours)


@dataclass(frozen=True)
class CallingRules:
    default: HoursRule
    states: dict[str, HoursRule]
    state_names: dict[str, str]  # "FLORIDA" -> "FL"
    holidays: dict[str, dict[str, dict[str, Any]]]


def callable_at(contacts: pl.DataFrame, window: CallingWindow, instant: datetime) -> pl.Series:
    """Per row: may the contact be called at `instant` (naive = UTC)?"""
    at = _as_utc(instant)

    def is_open(zones: list[str], states: list[str]) -> bool:
        intervals = open_intervals(zones, states, window, at, at + timedelta(seconds=1))
        return bool(intervals) and intervals[0][0] == at

    return _per_combination(contacts, is_open, pl.Boolean).alias("callable")


def next_call_start(contacts: pl.DataFrame, window: CallingWindow, now: datetime) -> pl.Series:
    """Per row: the first instant >= now (UTC) at which the contact may be called; null if none within 14 days."""
    start = _as_utc(now)
    end = start + timedelta(days=HORIZON_DAYS)

    def first_open(zones: list[str], states: list[str]) -> datetime | None:
        intervals = open_intervals(zones, states, window, start, end)
        return intervals[0][0] if intervals else None

    return _per_combination(contacts, first_open, UTC_DATETIME).alias("next_call_start_utc")


def call_windows(
    contacts: pl.DataFrame, window: CallingWindow, now: datetime, days: int = HORIZON_DAYS
) -> pl.DataFrame:
    """The open UTC intervals [opens_utc, closes_utc) of each contact (by `contact_id`) from now for `days`."""
    start = _as_utc(now)
    end = start + timedelta(days=days)
    interval_type = pl.List(pl.Struct({"opens_utc": UTC_DATETIME, "closes_utc": UTC_DATETIME}))

    def intervals(zones: list[str], states: list[str]) -> list[dict[str, datetime]]:
        return [
            {"opens_utc": opens, "closes_utc": closes}
            for opens, closes in open_intervals(zones, states, window, start, end)
        ]

    return (
        contacts.select("contact_id")
        .with_columns(_per_combination(contacts, intervals, interval_type).alias("interval"))
        .explode("interval")
        .drop_nulls("interval")
        .unnest("interval")
    )


def open_intervals(
    zones: list[str], states: list[str], window: CallingWindow, start: datetime, end: datetime
) -> list[Interval]:
    """Sorted, disjoint UTC intervals within [start, end) open in every zone under every applicable rule."""
    if not zones:
        return []
    try:
        tzinfos = [ZoneInfo(zone) for zone in zones]
    except (ZoneInfoNotFoundError, ValueError):
        return []  # a zone we cannot resolve cannot be proven open
    rules = calling_rules()
    layers = [campaign_rule(window), rules.default, *(rules.states[s] for s in states if s in rules.states)]

    def hours_on(day: date) -> Hours | None:
        start_minute, end_minute = 0, 24 * 60
        for layer in layers:
            hours = layer.hours_on(day)
            if hours is None:
                return None
            start_minute, end_minute = max(start_minute, hours[0]), min(end_minute, hours[1])
        return (start_minute, end_minute) if start_minute < end_minute else None

    return reduce(_intersect, (_zone_intervals(tz, hours_on, start, end) for tz in tzinfos))


@cache
def calling_rules(path: Path = RULES_PATH) -> CallingRules:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        states = {code.upper(): _hours_rule(spec, f"state {code}") for code, spec in (raw.get("states") or {}).items()}
        return CallingRules(
            default=_hours_rule(raw["default"], "default"),
            states=states,
            state_names={
                str(spec["name"]).upper(): code.upper() for code, spec in raw["states"].items() if spec.get("name")
            },
            holidays=raw.get("holidays") or {},
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"calling rules {path.name} are unusable: {exc}") from None


def campaign_rule(window: CallingWindow) -> HoursRule:
    unknown = set(window.days) - set(WEEKDAYS)
    if unknown:
        raise ConfigError(f"calling window days must be among {', '.join(WEEKDAYS)}, not {sorted(unknown)}")
    return HoursRule(
        hours=(_minutes(window.start, "campaign window"), _minutes(window.end, "campaign window")),
        day_hours={},
        closed_days=frozenset(WEEKDAYS) - set(window.days),
    )


@cache
def holiday_dates(calendar_name: str, year: int) -> frozenset[date]:
    """The calendar's dates in `year`; a fixed date on a weekend also closes its observed Friday or Monday."""
    specs = calling_rules().holidays.get(calendar_name)
    if specs is None:
        raise ConfigError(f"calling rules name an unknown holiday calendar {calendar_name!r}")
    dates: set[date] = set()
    for spec in specs.values():
        if "day" in spec:
            day = date(year, spec["month"], spec["day"])
            dates.add(day)
            if day.weekday() == 5:
                dates.add(day - timedelta(days=1))
            elif day.weekday() == 6:
                dates.add(day + timedelta(days=1))
        else:
            dates.add(_nth_weekday(year, spec["month"], WEEKDAYS.index(spec["weekday"]), spec["nth"]))
    return frozenset(dates)


def window_keys(contacts: pl.DataFrame) -> pl.Series:
    """Per row: the key of its combination of zones and states ("America/Chicago|America/Denver;TX"), from
    which `call_windows_for_keys` computes the windows; rows with the same key have the same windows."""
    keyed = _combination_keys(contacts)
    return keyed.select(pl.concat_str("zones_key", pl.lit(";"), "states_key").alias("window_key")).to_series()


def call_windows_for_keys(
    keys: list[str], window: CallingWindow, now: datetime, days: int = HORIZON_DAYS
) -> pl.DataFrame:
    """`call_windows` per window key: window_key, opens_utc, closes_utc."""
    start = _as_utc(now)
    end = start + timedelta(days=days)
    rows: list[tuple[str, datetime, datetime]] = []
    for key in keys:
        zones_key, _, states_key = key.partition(";")
        zones = zones_key.split("|") if zones_key else []
        states = states_key.split("|") if states_key else []
        rows.extend((key, opens, closes) for opens, closes in open_intervals(zones, states, window, start, end))
    return pl.DataFrame(
        rows, schema={"window_key": pl.Utf8, "opens_utc": UTC_DATETIME, "closes_utc": UTC_DATETIME}, orient="row"
    )


def _per_combination(contacts: pl.DataFrame, compute: Callable[[list[str], list[str]], Any], dtype) -> pl.Series:
    """Evaluate `compute(zones, states)` once per distinct combination and spread it over the rows."""
    keyed = _combination_keys(contacts)
    distinct = keyed.unique(["zones_key", "states_key"], maintain_order=True)
    values = [compute(zones, states) for zones, states in distinct.select("zones", "states").iter_rows()]
    table = distinct.select("zones_key", "states_key").with_columns(pl.Series("value", values, dtype=dtype))
    return keyed.join(table, on=["zones_key", "states_key"], how="left", maintain_order="left")["value"]


def _combination_keys(contacts: pl.DataFrame) -> pl.DataFrame:
    """zones and states (sorted, distinct) of each row and their keys (joined with "|")."""
    return contacts.select(
        pl.col("timezone_candidates").list.drop_nulls().list.unique().list.sort().fill_null([]).alias("zones"),
        pl.concat_list(_state("phone_state", contacts), _state("state", contacts))
        .list.drop_nulls()
        .list.unique()
        .list.sort()
        .alias("states"),
    ).with_columns(
        pl.col("zones").list.join("|").alias("zones_key"),
        pl.col("states").list.join("|").alias("states_key"),
    )


def _state(column: str, contacts: pl.DataFrame) -> pl.Expr:
    if column not in contacts.columns:
        return pl.lit(None, dtype=pl.Utf8)
    code = pl.col(column).cast(pl.Utf8).str.strip_chars().str.to_uppercase()
    return pl.when(code == "").then(None).otherwise(code.replace(calling_rules().state_names))


def _zone_intervals(
    zone: ZoneInfo, hours_on: Callable[[date], Hours | None], start: datetime, end: datetime
) -> list[Interval]:
    intervals = []
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        hours = hours_on(day)
        if hours is not None:
            opens = max(_local_to_utc(day, hours[0], zone, later=True), start)
            closes = min(_local_to_utc(day, hours[1], zone, later=False), end)
            if opens < closes:
                intervals.append((opens, closes))
        day += timedelta(days=1)
    return intervals


def _local_to_utc(day: date, minute: int, zone: ZoneInfo, *, later: bool) -> datetime:
    """A wall-clock time on a local day as UTC; of the two readings around a DST change, the stricter one."""
    local = datetime.combine(day, time()) + timedelta(minutes=minute)
    readings = [local.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
    return max(readings) if later else min(readings)


def _intersect(left: list[Interval], right: list[Interval]) -> list[Interval]:
    result, i, j = [], 0, 0
    while i < len(left) and j < len(right):
        opens, closes = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if opens < closes:
            result.append((opens, closes))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return result


def _hours_rule(spec: dict[str, Any], what: str) -> HoursRule:
    return HoursRule(
        hours=(_minutes(spec["start"], what), _minutes(spec["end"], what)),
        day_hours={
            str(day): (_minutes(hours["start"], what), _minutes(hours["end"], what))
            for day, hours in (spec.get("days") or {}).items()
        },
        closed_days=frozenset(spec.get("closed_days") or ()),
        holiday_calendars=tuple(spec.get("closed_on_holidays") or ()),
    )


def _minutes(value: str, what: str) -> int:
    try:
        hours, minutes = (int(part) for part in str(value).split(":"))
    except ValueError:
        raise ConfigError(f"{what}: time {value!r} must be HH:MM") from None
    if not (0 <= minutes < 60 and 0 <= hours * 60 + minutes <= 24 * 60):
        raise ConfigError(f"{what}: time {value!r} must be between 00:00 and 24:00")
    return hours * 60 + minutes


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> date:
    days = [week[weekday] for week in calendar.monthcalendar(year, month) if week[weekday]]
    return date(year, month, days[nth - 1 if nth > 0 else nth])


def _as_utc(instant: datetime) -> datetime:
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)

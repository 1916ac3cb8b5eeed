"""Calling windows, local to the contact: legal hours, stricter state rules, the campaign's own window and days.

Rules are data, read by `window_rules` (`reference/calling_rules.yaml`, or the compliance owner's
`CALLARO_CONFIG/calling_rules.yaml`, or the file `CALLARO_CALLING_RULES` names): each country's hours (the United States' 08:00-21:00, Canada's CRTC
hours), narrowed per state (hours, per-weekday hours, closed weekdays, holiday calendars from the maintained
`holidays` package, optionally in a fixed clock such as Mississippi's Central Standard Time). A contact gets the
rules of every state it is tied to (`places.rule_states`: the area-code state, the address state, the ZIP's
state) and of every country among them, its `country` and its number's region (none: the United States), so
the strictest wins; with several candidate time zones (`timezone_candidates`) only instants open in every one of
them count; with none it is never callable. Hours are [start, end): at 20:59 local a 21:00 end is open, at 21:00
it is closed. A campaign's `last_call_minutes` closes each open interval that many minutes early.

Contacts share few (zones, states, countries) combinations: `window_keys` names each row's combination and
`call_windows_for_keys` computes each distinct one once with zoneinfo (the audience build stores them per key),
and within one computation each (zone, local rules) pair is computed once. Local times
are turned into UTC per calendar day, taking the later instant for an opening and the earlier for a closing when
a DST change makes a local time ambiguous or skipped.

SQL ("who in campaign X may be called at T"): each build stores its members' open UTC intervals for the next 14
days (`audience_build_windows`, per window key), and the table macro `callable_contacts(campaign, ts)`
(sql/20_dnc.sql) reads them; `callaro audience CAMPAIGN --windows` exports them for any span up to 730 days. This
module is the only implementation of the rules, and an audience not rebuilt for 14 days has no open interval
left, so it fails closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache, reduce
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from callaro_pipeline.core.campaign_settings import CallingWindow
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.lists import distinct_sorted
from callaro_pipeline.core.places import rule_states
from callaro_pipeline.core.window_rules import (
    DEFAULT_COUNTRY,
    CallingRules,
    Hours,
    HoursRule,
    calling_rules,
    campaign_rule,
)

HORIZON_DAYS = 14
MAX_DAYS = 730
UTC_DATETIME = pl.Datetime("us", "UTC")

Interval = tuple[datetime, datetime]

_US_NAMES = frozenset({"US", "USA", "U.S.", "U.S.A.", "UNITED STATES", "UNITED STATES OF AMERICA", "AMERICA"})
_CA_NAMES = frozenset({"CA", "CAN", "CANADA"})
# Number regions that are the United States for calling-hour purposes (the NANP territories).
_US_REGIONS = ("US", "PR", "VI", "GU", "AS", "MP")


# --- the public functions -------------------------------------------------------------------------------------


def open_intervals(
    zones: list[str],
    states: list[str],
    window: CallingWindow,
    start: datetime,
    end: datetime,
    *,
    countries: Iterable[str] | None = None,
    not_after: datetime | None = None,
) -> list[Interval]:
    """Sorted, disjoint UTC intervals within [start, end) open in every zone under every applicable rule.

    `countries` (US, CA) default to those of the states, else the United States. `not_after` ends every interval
    at that instant (the national DNC snapshot's age limit). The campaign's `last_call_minutes` close each
    interval early; an interval cut by `end` is closed as if the window went on (stricter, never later).
    """
    start, end = _as_utc(start), _as_utc(end)
    if not_after is not None:
        end = min(end, _as_utc(not_after))
    if not zones or start >= end:
        return []
    try:
        tzinfos = [ZoneInfo(zone) for zone in zones]
    except (ZoneInfoNotFoundError, ValueError):
        return []  # a zone we cannot resolve cannot be proven open
    local, fixed = _layers(states, countries, window)
    last_call = timedelta(minutes=_last_call_minutes(window))
    # Compute a day further than asked, so an interval the end cuts is closed early as if it went on.
    span_end = end + timedelta(days=1) if last_call else end
    pieces = [_zone_intervals(tz, local, start, span_end) for tz in tzinfos]
    pieces += [_zone_intervals(clock, layers, start, span_end) for clock, layers in fixed.items()]
    result = reduce(_intersect, pieces)
    if last_call:
        result = [(opens, closes - last_call) for opens, closes in result if closes - last_call > opens]
    return [(opens, min(closes, end)) for opens, closes in result if opens < end]


def window_keys(contacts: pl.DataFrame) -> pl.Series:
    """Per row: the key of its combination of zones, states and countries
    ("America/Chicago|America/Denver;TX;US"), from which `call_windows_for_keys` computes the windows; rows with
    the same key have the same windows. Raises ConfigError when the rule file cannot be used (fail closed)."""
    keyed = _combination_keys(contacts)
    return keyed.select(
        pl.concat_str("zones_key", pl.lit(";"), "states_key", pl.lit(";"), "countries_key").alias("window_key")
    ).to_series()


def call_windows_for_keys(
    keys: list[str],
    window: CallingWindow,
    now: datetime,
    days: int = HORIZON_DAYS,
    *,
    not_after: datetime | None = None,
) -> pl.DataFrame:
    """`call_windows` per window key: window_key, opens_utc, closes_utc. A key not made by `window_keys` (e.g.
    of a build converted from an older format) has no open interval."""
    calling_rules()  # an unusable rule file fails every computation, even one with no keys
    start = _as_utc(now)
    end = start + timedelta(days=days)
    rows: list[tuple[str, datetime, datetime]] = []
    for key in keys:
        zones, states, countries = parse_window_key(key)
        rows.extend(
            (key, opens, closes)
            for opens, closes in open_intervals(
                zones, states, window, start, end, countries=countries, not_after=not_after
            )
        )
    return pl.DataFrame(
        rows, schema={"window_key": pl.Utf8, "opens_utc": UTC_DATETIME, "closes_utc": UTC_DATETIME}, orient="row"
    )


def parse_window_key(key: str) -> tuple[list[str], list[str], list[str] | None]:
    """(zones, states, countries) of a window key; countries None for a key of the older "zones;states" form."""
    parts = key.split(";")
    zones = parts[0].split("|") if parts[0] else []
    states = parts[1].split("|") if len(parts) > 1 and parts[1] else []
    countries = (parts[2].split("|") if parts[2] else []) if len(parts) > 2 else None
    return zones, states, countries


# --- the arithmetic -------------------------------------------------------------------------------------------


def _layers(
    states: Iterable[str], countries: Iterable[str] | None, window: CallingWindow
) -> tuple[tuple[HoursRule, ...], dict[tzinfo, tuple[HoursRule, ...]]]:
    """The rules that apply: (those in the contact's local time, those in a fixed clock by clock)."""
    rules = calling_rules()
    state_rules = [rules.states[code] for code in sorted(set(states)) if code in rules.states]
    if countries is None:  # a key of the older form: the countries of its states
        countries = [rules.states[code].country if code in rules.states else DEFAULT_COUNTRY for code in states]
    # The United States' hours bind every call (the contract's "never outside 08:00-21:00 local", the calls being
    # placed from the US); another country's hours (Canada's) narrow them further.
    country_codes = sorted({DEFAULT_COUNTRY, *countries})
    country_rules = [rules.countries[code] for code in country_codes if code in rules.countries]
    local: list[HoursRule] = [campaign_rule(window)]
    fixed: dict[tzinfo, list[HoursRule]] = {}
    for rule in (*country_rules, *state_rules):
        if rule.clock is None:
            local.append(rule)
        else:
            fixed.setdefault(rule.clock, []).append(rule)
    return tuple(local), {clock: tuple(layers) for clock, layers in fixed.items()}


def _last_call_minutes(window: CallingWindow) -> int:
    value = getattr(window, "last_call_minutes", 0) or 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"calling window last_call_minutes must be a whole number >= 0, not {value!r}")
    return value


@lru_cache(maxsize=65536)
def _day_hours(layers: tuple[HoursRule, ...], day: date) -> Hours | None:
    start_minute, end_minute = 0, 24 * 60
    for layer in layers:
        hours = layer.hours_on(day)
        if hours is None:
            return None
        start_minute, end_minute = max(start_minute, hours[0]), min(end_minute, hours[1])
    return (start_minute, end_minute) if start_minute < end_minute else None


@lru_cache(maxsize=8192)
def _zone_intervals(zone: tzinfo, layers: tuple[HoursRule, ...], start: datetime, end: datetime) -> list[Interval]:
    """The UTC intervals within [start, end) open under `layers` read in `zone` (once per zone and rules)."""
    intervals = []
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        hours = _day_hours(layers, day)
        if hours is not None:
            opens = max(_local_to_utc(day, hours[0], zone, later=True), start)
            closes = min(_local_to_utc(day, hours[1], zone, later=False), end)
            if opens < closes:
                intervals.append((opens, closes))
        day += timedelta(days=1)
    return intervals


def _local_to_utc(day: date, minute: int, zone: tzinfo, *, later: bool) -> datetime:
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


# --- contacts to combinations ---------------------------------------------------------------------------------


def _combination_keys(contacts: pl.DataFrame) -> pl.DataFrame:
    """zones, states and countries (sorted, distinct) of each row and their keys (joined with "|")."""
    rules = calling_rules()
    states = _rule_states(contacts, rules)
    keyed = contacts.select(
        distinct_sorted(pl.col("timezone_candidates")).fill_null([]).alias("zones")
        if "timezone_candidates" in contacts.columns
        else pl.lit([], dtype=pl.List(pl.Utf8)).alias("zones"),
        states.alias("states"),
        _country(contacts).alias("_country"),
        _phone_country(contacts).alias("_region"),
    )
    from_states = pl.col("states").list.eval(
        pl.element().replace_strict(rules.state_countries(), default=DEFAULT_COUNTRY)
    )
    countries = distinct_sorted(pl.concat_list(from_states, "_country", "_region"))
    return (
        keyed.with_columns(
            pl.when(countries.list.len() > 0).then(countries).otherwise(pl.lit([DEFAULT_COUNTRY])).alias("countries")
        )
        .with_columns(
            pl.col("zones").list.join("|").alias("zones_key"),
            # only states with a rule of their own shape the windows (`_layers` skips the others): keyed without
            # them, contacts of a campaign share a few hundred combinations instead of one per state triple
            pl.col("states")
            .list.eval(pl.element().filter(pl.element().is_in(sorted(rules.states))))
            .list.join("|")
            .alias("states_key"),
            pl.col("countries").list.join("|").alias("countries_key"),
        )
        .drop("_country", "_region")
    )


def _rule_states(contacts: pl.DataFrame, rules: CallingRules) -> pl.Series:
    """The states whose rules apply to each row (sorted, distinct codes): `places.rule_states` (area-code
    state, address state, the ZIP's state), with state names the rule file spells out read as their codes."""
    codes = rule_states(contacts)
    return (
        pl.DataFrame({"codes": codes})
        .select(
            distinct_sorted(
                pl.col("codes")
                .fill_null([])
                .list.eval(pl.element().str.strip_chars().str.to_uppercase().replace(rules.state_names))
                .list.eval(pl.element().filter(pl.element() != ""))
            )
        )
        .to_series()
    )


def _country(contacts: pl.DataFrame) -> pl.Expr:
    """The `country` column as US / CA (null when absent, empty or another country)."""
    if "country" not in contacts.columns:
        return pl.lit(None, dtype=pl.Utf8)
    text = pl.col("country").cast(pl.Utf8).str.strip_chars().str.to_uppercase()
    return pl.when(text.is_in(list(_US_NAMES))).then(pl.lit("US")).when(text.is_in(list(_CA_NAMES))).then(pl.lit("CA"))


def _phone_country(contacts: pl.DataFrame) -> pl.Expr:
    """The number's region (`phone_region`) as US / CA (null otherwise)."""
    if "phone_region" not in contacts.columns:
        return pl.lit(None, dtype=pl.Utf8)
    region = pl.col("phone_region").cast(pl.Utf8).str.strip_chars().str.to_uppercase()
    return pl.when(region.is_in(list(_US_REGIONS))).then(pl.lit("US")).when(region == "CA").then(pl.lit("CA"))


def _as_utc(instant: datetime) -> datetime:
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)

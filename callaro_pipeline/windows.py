"""Calling windows, local to the contact: legal hours, stricter state rules, the campaign's own window and days.

Rules are data (`reference/calling_rules.yaml`, or the compliance owner's `CALLARO_CONFIG/calling_rules.yaml`, or
the file `CALLARO_CALLING_RULES` names): each country's hours (the United States' 08:00-21:00, Canada's CRTC
hours), narrowed per state (hours, per-weekday hours, closed weekdays, holiday calendars from the maintained
`holidays` package, optionally in a fixed clock such as Mississippi's Central Standard Time). A contact gets the
rules of every state it is tied to (`places.rule_states`: the area-code state, the address state, the ZIP's
state) and of every country among them, its `country` and its number's region (none: the United States), so
the strictest wins; with several candidate time zones (`timezone_candidates`) only instants open in every one of
them count; with none it is never callable. Hours are [start, end): at 20:59 local a 21:00 end is open, at 21:00
it is closed. A campaign's `last_call_minutes` closes each open interval that many minutes early.

Contacts share few (zones, states, countries) combinations, so each distinct combination is computed once with
zoneinfo and joined back, and within one computation each (zone, local rules) pair is computed once. Local times
are turned into UTC per calendar day, taking the later instant for an opening and the earlier for a closing when
a DST change makes a local time ambiguous or skipped.

SQL ("who in campaign X may be called at T"): each build stores its members' open UTC intervals for the next 14
days (`audience_build_windows`, per window key), and the table macro `callable_contacts(campaign, ts)`
(sql/20_dnc.sql) reads them; `callaro audience CAMPAIGN --windows` exports them for any span up to 730 days. This
module is the only implementation of the rules, and an audience not rebuilt for 14 days has no open interval
left, so it fails closed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import cache, lru_cache, reduce
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import polars as pl
import yaml

from callaro_pipeline.config import PROJECT_ROOT, WEEKDAYS, CallingWindow
from callaro_pipeline.errors import ConfigError
from callaro_pipeline.places import rule_states

RULES_PATH = Path(__file__).parent / "reference" / "calling_rules.yaml"
RULES_FILE = "calling_rules.yaml"
RULES_ENV = "CALLARO_CALLING_RULES"
HORIZON_DAYS = 14
MAX_DAYS = 730
UTC_DATETIME = pl.Datetime("us", "UTC")
DEFAULT_COUNTRY = "US"

Interval = tuple[datetime, datetime]
Hours = tuple[int, int]  # minutes after local midnight, [start, end)

_US_NAMES = frozenset({"US", "USA", "U.S.", "U.S.A.", "UNITED STATES", "UNITED STATES OF AMERICA", "AMERICA"})
_CA_NAMES = frozenset({"CA", "CAN", "CANADA"})
# Number regions that are the United States for calling-hour purposes (the NANP territories).
_US_REGIONS = ("US", "PR", "VI", "GU", "AS", "MP")
_TIME = re.compile(r"^(\d{2}):(\d{2})$")
_CLOCK = re.compile(r"^UTC([+-])(\d{2}):(\d{2})$")
_RULE_KEYS = frozenset(
    {"name", "country", "citation", "start", "end", "days", "closed_days", "closed_on_holidays", "clock", "note"}
)
_CALENDAR_KEYS = frozenset({"country", "subdiv", "categories", "names"})


@dataclass(frozen=True, eq=False)
class HolidayCalendar:
    """The days a holiday calendar of the `holidays` package closes, observed days included."""

    country: str
    subdiv: str | None = None
    categories: tuple[str, ...] = ("public",)
    names: tuple[str, ...] = ()  # only the holidays whose name contains one of these (any, if empty)

    def closes(self, day: date) -> bool:
        return day in _holiday_dates(self, day.year)


@cache
def _holiday_dates(calendar: HolidayCalendar, year: int) -> frozenset[date]:
    """Closed days in and around `year`. The calendars of the year before and after are read too: an observed
    day can fall in the previous year (Fri 2027-12-31 for New Year's Day 2028 belongs to the 2027 calendar)."""
    table = holidays.country_holidays(
        calendar.country,
        subdiv=calendar.subdiv,
        years=range(year - 1, year + 2),
        observed=True,
        categories=calendar.categories,
    )
    wanted = [name.lower() for name in calendar.names]
    return frozenset(day for day, name in table.items() if not wanted or any(part in name.lower() for part in wanted))


@dataclass(frozen=True, eq=False)
class HoursRule:
    """One layer of restrictions: a country, a state or the campaign's window (identity-hashed, for caches)."""

    code: str
    hours: Hours | None = None  # None: the rule does not limit the hours
    day_hours: Mapping[str, Hours] = field(default_factory=dict)
    closed_days: frozenset[str] = frozenset()
    holidays: tuple[HolidayCalendar, ...] = ()
    clock: tzinfo | None = None  # None: the contact's local time
    country: str = DEFAULT_COUNTRY
    name: str = ""
    citation: str = ""

    def hours_on(self, day: date) -> Hours | None:
        """The open hours on `day` (in the rule's clock), None when closed all day."""
        weekday = WEEKDAYS[day.weekday()]
        if weekday in self.closed_days or any(calendar.closes(day) for calendar in self.holidays):
            return None
        return self.day_hours.get(weekday, self.hours or (0, 24 * 60))


@dataclass(frozen=True)
class CallingRules:
    countries: dict[str, HoursRule]
    states: dict[str, HoursRule]
    state_names: dict[str, str]  # "FLORIDA" -> "FL"
    path: Path

    def state_countries(self) -> dict[str, str]:
        return {code: rule.country for code, rule in self.states.items()}


# --- the public functions -------------------------------------------------------------------------------------


def callable_at(contacts: pl.DataFrame, window: CallingWindow, instant: datetime) -> pl.Series:
    """Per row: may the contact be called at `instant` (naive = UTC)?"""
    at = _as_utc(instant)

    def is_open(zones: list[str], states: list[str], countries: list[str]) -> bool:
        intervals = open_intervals(zones, states, window, at, at + timedelta(seconds=1), countries=countries)
        return bool(intervals) and intervals[0][0] == at

    return _per_combination(contacts, is_open, pl.Boolean).alias("callable")


def next_call_start(contacts: pl.DataFrame, window: CallingWindow, now: datetime) -> pl.Series:
    """Per row: the first instant >= now (UTC) at which the contact may be called; null if none within 14 days."""
    start = _as_utc(now)
    end = start + timedelta(days=HORIZON_DAYS)

    def first_open(zones: list[str], states: list[str], countries: list[str]) -> datetime | None:
        intervals = open_intervals(zones, states, window, start, end, countries=countries)
        return intervals[0][0] if intervals else None

    return _per_combination(contacts, first_open, UTC_DATETIME).alias("next_call_start_utc")


def call_windows(
    contacts: pl.DataFrame,
    window: CallingWindow,
    now: datetime,
    days: int = HORIZON_DAYS,
    *,
    not_after: datetime | None = None,
) -> pl.DataFrame:
    """The open UTC intervals [opens_utc, closes_utc) of each contact (by `contact_id`) from now for `days`,
    ended at `not_after` when given."""
    start = _as_utc(now)
    end = start + timedelta(days=days)
    interval_type = pl.List(pl.Struct({"opens_utc": UTC_DATETIME, "closes_utc": UTC_DATETIME}))

    def intervals(zones: list[str], states: list[str], countries: list[str]) -> list[dict[str, datetime]]:
        return [
            {"opens_utc": opens, "closes_utc": closes}
            for opens, closes in open_intervals(
                zones, states, window, start, end, countries=countries, not_after=not_after
            )
        ]

    return (
        contacts.select("contact_id")
        .with_columns(_per_combination(contacts, intervals, interval_type).alias("interval"))
        .explode("interval")
        .drop_nulls("interval")
        .unnest("interval")
    )


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


def campaign_rule(window: CallingWindow) -> HoursRule:
    unknown = set(window.days) - set(WEEKDAYS)
    if unknown:
        raise ConfigError(f"calling window days must be among {', '.join(WEEKDAYS)}, not {sorted(unknown)}")
    return _campaign_rule(window.start, window.end, tuple(window.days))


@lru_cache(maxsize=256)
def _campaign_rule(start: str, end: str, days: tuple[str, ...]) -> HoursRule:
    return HoursRule(
        code="campaign",
        hours=(_campaign_minutes(start), _campaign_minutes(end)),
        closed_days=frozenset(WEEKDAYS) - set(days),
    )


# --- rule data ------------------------------------------------------------------------------------------------


def rules_path() -> Path:
    """The rule file in force: `CALLARO_CALLING_RULES`, else `CALLARO_CONFIG/calling_rules.yaml` when the
    compliance owner keeps one there, else the bundled `reference/calling_rules.yaml`."""
    named = os.environ.get(RULES_ENV)
    if named:
        return Path(named)
    override = Path(os.environ.get("CALLARO_CONFIG") or PROJECT_ROOT / "config") / RULES_FILE
    return override if override.is_file() else RULES_PATH


def calling_rules(path: Path | None = None) -> CallingRules:
    """The rules of `path` (default: `rules_path()`), read again when the file changes. Raises ConfigError
    ("<file> line N: ...") when the file cannot be used."""
    path = Path(path or rules_path())
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError(f"calling rules {path}: cannot be read ({exc.strerror})") from None
    return _load_rules(path.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_rules(path: Path, _mtime_ns: int, _size: int) -> CallingRules:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"calling rules {path}: cannot be read ({exc})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{path} line {line}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return _RuleReader(path).rules(root)


class _RuleReader:
    """Reads the composed YAML nodes, so that every problem names its line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else 1
        return ConfigError(f"{self.path} line {line}: {message}")

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        items: list[tuple[str, yaml.Node, yaml.Node]] = []
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.fail(key, f"{what}: keys must be plain names")
            items.append((str(key.value), key, value))
        seen: set[str] = set()
        for name, key, _ in items:
            if name in seen:
                raise self.fail(key, f"{what}: {name} is given twice")
            seen.add(name)
        return items

    def text(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            raise self.fail(node, f"{what} must be a non-empty text")
        return str(node.value).strip()

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def minutes(self, node: yaml.Node, what: str) -> int:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f'{what} must be a time "HH:MM"')
        if node.tag != "tag:yaml.org,2002:str" or node.style not in ("'", '"'):
            raise self.fail(
                node, f'{what}: time {node.value} must be quoted ("{node.value}"): YAML reads 10:00 as the number 600'
            )
        match = _TIME.match(node.value)
        if not match or int(match[2]) >= 60 or int(match[1]) * 60 + int(match[2]) > 24 * 60:
            raise self.fail(node, f"{what}: time {node.value!r} must be HH:MM between 00:00 and 24:00")
        return int(match[1]) * 60 + int(match[2])

    def hours(self, spec: dict[str, yaml.Node], parent: yaml.Node, what: str) -> Hours | None:
        if "start" not in spec and "end" not in spec:
            return None
        if "start" not in spec or "end" not in spec:
            raise self.fail(parent, f"{what}: give both start and end")
        hours = (self.minutes(spec["start"], f"{what}.start"), self.minutes(spec["end"], f"{what}.end"))
        if hours[0] >= hours[1]:
            raise self.fail(spec["start"], f"{what}: start must be before end")
        return hours

    def weekday(self, node: yaml.Node, what: str) -> str:
        day = self.text(node, what).lower()
        if day not in WEEKDAYS:
            raise self.fail(node, f"{what}: {day!r} is not one of {', '.join(WEEKDAYS)}")
        return day

    def clock(self, node: yaml.Node, what: str) -> tzinfo:
        value = self.text(node, what)
        match = _CLOCK.match(value)
        if not match or int(match[2]) > 14 or int(match[3]) >= 60:
            raise self.fail(node, f'{what}: {value!r} must be a fixed clock like "UTC-06:00"')
        offset = timedelta(hours=int(match[2]), minutes=int(match[3]))
        return timezone(-offset if match[1] == "-" else offset, value)

    def calendar(self, node: yaml.Node, what: str) -> HolidayCalendar:
        spec = {name: value for name, _, value in self.mapping(node, what)}
        unknown = set(spec) - _CALENDAR_KEYS
        if unknown:
            raise self.fail(node, f"{what}: unknown key(s) {', '.join(sorted(unknown))}")
        if "country" not in spec:
            raise self.fail(node, f"{what}: country is required")
        calendar = HolidayCalendar(
            country=self.text(spec["country"], f"{what}.country").upper(),
            subdiv=self.text(spec["subdiv"], f"{what}.subdiv").upper() if "subdiv" in spec else None,
            categories=tuple(
                self.text(item, f"{what}.categories")
                for item in self.sequence(spec["categories"], f"{what}.categories")
            )
            if "categories" in spec
            else ("public",),
            names=tuple(self.text(item, f"{what}.names") for item in self.sequence(spec["names"], f"{what}.names"))
            if "names" in spec
            else (),
        )
        try:
            _holiday_dates(calendar, 2026)
        except (NotImplementedError, ValueError, KeyError, AttributeError) as exc:
            raise self.fail(node, f"{what}: the holidays package has no such calendar ({exc})") from None
        return calendar

    def rule(self, code: str, node: yaml.Node, what: str, *, countries: Iterable[str]) -> HoursRule:
        items = self.mapping(node, what)
        spec = {name: value for name, _, value in items}
        for name, key, _ in items:
            if name not in _RULE_KEYS:
                raise self.fail(key, f"{what}: unknown key {name!r} (known: {', '.join(sorted(_RULE_KEYS))})")
        if "citation" not in spec:
            raise self.fail(node, f"{what}: citation is required (the statute or rule)")
        self.text(spec["citation"], f"{what}.citation")
        country = self.text(spec["country"], f"{what}.country").upper() if "country" in spec else DEFAULT_COUNTRY
        if country not in countries:
            raise self.fail(spec["country"], f"{what}: country {country!r} has no rules under countries")
        day_hours = {}
        for _day_name, key, hours_node in self.mapping(spec["days"], f"{what}.days") if "days" in spec else []:
            day = self.weekday(key, f"{what}.days")
            hours_spec = {name: value for name, _, value in self.mapping(hours_node, f"{what}.days.{day}")}
            unknown = set(hours_spec) - {"start", "end"}
            if unknown:
                raise self.fail(hours_node, f"{what}.days.{day}: unknown key(s) {', '.join(sorted(unknown))}")
            day_hours[day] = self.hours(hours_spec, hours_node, f"{what}.days.{day}") or (0, 24 * 60)
        return HoursRule(
            code=code,
            hours=self.hours(spec, node, what),
            day_hours=day_hours,
            closed_days=frozenset(
                self.weekday(item, f"{what}.closed_days")
                for item in (self.sequence(spec["closed_days"], f"{what}.closed_days") if "closed_days" in spec else [])
            ),
            holidays=tuple(
                self.calendar(item, f"{what}.closed_on_holidays")
                for item in (
                    self.sequence(spec["closed_on_holidays"], f"{what}.closed_on_holidays")
                    if "closed_on_holidays" in spec
                    else []
                )
            ),
            clock=self.clock(spec["clock"], f"{what}.clock") if "clock" in spec else None,
            country=country,
            name=self.text(spec["name"], f"{what}.name") if "name" in spec else "",
            citation=self.text(spec["citation"], f"{what}.citation"),
        )

    def rules(self, root: yaml.Node | None) -> CallingRules:
        if root is None:
            raise ConfigError(f"{self.path} line 1: the file is empty")
        top = {name: (key, value) for name, key, value in self.mapping(root, "the file")}
        for name, (key, _) in top.items():
            if name not in ("countries", "states"):
                raise self.fail(key, f"unknown top-level key {name!r} (known: countries, states)")
        if "countries" not in top:
            raise self.fail(root, "countries is required (at least US)")
        country_items = self.mapping(top["countries"][1], "countries")
        codes = [name.upper() for name, _, _ in country_items]
        countries = {
            name.upper(): self.rule(name.upper(), value, f"countries.{name}", countries=codes)
            for name, _, value in country_items
        }
        if DEFAULT_COUNTRY not in countries:
            raise self.fail(top["countries"][1], "countries: US is required (the default for every contact)")
        states: dict[str, HoursRule] = {}
        if "states" in top:
            for name, _, value in self.mapping(top["states"][1], "states"):
                code = name.strip().upper()
                states[code] = self.rule(code, value, f"states.{name}", countries=codes)
        names = {rule.name.upper(): code for code, rule in states.items() if rule.name}
        return CallingRules(countries=countries, states=states, state_names=names, path=self.path)


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


def _campaign_minutes(value: Any) -> int:
    match = _TIME.match(str(value).strip().zfill(5)) if isinstance(value, str) else None
    if not match or int(match[2]) >= 60 or int(match[1]) * 60 + int(match[2]) > 24 * 60:
        raise ConfigError(f'campaign window: time {value!r} must be "HH:MM" between 00:00 and 24:00')
    return int(match[1]) * 60 + int(match[2])


# --- contacts to combinations ---------------------------------------------------------------------------------


def _per_combination(
    contacts: pl.DataFrame, compute: Callable[[list[str], list[str], list[str]], Any], dtype: Any
) -> pl.Series:
    """Evaluate `compute(zones, states, countries)` once per distinct combination and spread it over the rows."""
    keyed = _combination_keys(contacts)
    on = ["zones_key", "states_key", "countries_key"]
    distinct = keyed.unique(on, maintain_order=True)
    values = [compute(*row) for row in distinct.select("zones", "states", "countries").iter_rows()]
    table = distinct.select(on).with_columns(pl.Series("value", values, dtype=dtype))
    return keyed.join(table, on=on, how="left", maintain_order="left")["value"]


def _combination_keys(contacts: pl.DataFrame) -> pl.DataFrame:
    """zones, states and countries (sorted, distinct) of each row and their keys (joined with "|")."""
    rules = calling_rules()
    states = _rule_states(contacts, rules)
    keyed = contacts.select(
        pl.col("timezone_candidates").list.drop_nulls().list.unique().list.sort().fill_null([]).alias("zones")
        if "timezone_candidates" in contacts.columns
        else pl.lit([], dtype=pl.List(pl.Utf8)).alias("zones"),
        states.alias("states"),
        _country(contacts).alias("_country"),
        _phone_country(contacts).alias("_region"),
    )
    from_states = pl.col("states").list.eval(
        pl.element().replace_strict(rules.state_countries(), default=DEFAULT_COUNTRY)
    )
    countries = pl.concat_list(from_states, "_country", "_region").list.drop_nulls().list.unique().list.sort()
    return (
        keyed.with_columns(
            pl.when(countries.list.len() > 0).then(countries).otherwise(pl.lit([DEFAULT_COUNTRY])).alias("countries")
        )
        .with_columns(
            pl.col("zones").list.join("|").alias("zones_key"),
            pl.col("states").list.join("|").alias("states_key"),
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
            pl.col("codes")
            .fill_null([])
            .list.eval(pl.element().str.strip_chars().str.to_uppercase().replace(rules.state_names))
            .list.eval(pl.element().filter(pl.element() != ""))
            .list.drop_nulls()
            .list.unique()
            .list.sort()
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

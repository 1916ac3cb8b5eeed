"""Calling rules as data: the rule file (`reference/calling_rules.yaml`, the compliance owner's
`CALLARO_CONFIG/calling_rules.yaml`, or the file `CALLARO_CALLING_RULES` names) read into `HoursRule` layers, each
problem named with its file and line, and a campaign's own window as one more layer. `windows` does the
arithmetic with them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta, timezone, tzinfo
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import holidays
import yaml

from callaro_pipeline.core.campaign_settings import WEEKDAYS, CallingWindow
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.project_paths import PROJECT_ROOT

RULES_PATH = Path(__file__).parent / "reference" / "calling_rules.yaml"
RULES_FILE = "calling_rules.yaml"
RULES_ENV = "CALLARO_CALLING_RULES"
DEFAULT_COUNTRY = "US"

Hours = tuple[int, int]  # minutes after local midnight, [start, end)

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


def _campaign_minutes(value: Any) -> int:
    match = _TIME.match(str(value).strip().zfill(5)) if isinstance(value, str) else None
    if not match or int(match[2]) >= 60 or int(match[1]) * 60 + int(match[2]) > 24 * 60:
        raise ConfigError(f'campaign window: time {value!r} must be "HH:MM" between 00:00 and 24:00')
    return int(match[1]) * 60 + int(match[2])


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

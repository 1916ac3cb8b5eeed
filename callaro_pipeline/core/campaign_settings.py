"""The settings of a campaign file, validated: custom fields, agent variables, calling windows, audience and
duplicate settings, with problems worded for the person who wrote the file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic import Field as PydanticField
from pydantic.dataclasses import dataclass as pydantic_dataclass

from callaro_pipeline.core.errors import ConfigError

DUPLICATE_POLICIES = ("suppress", "merge", "split")
DuplicatePolicy = Literal["suppress", "merge", "split"]
CUSTOM_FIELD_TYPES = ("string", "integer", "number", "boolean", "date")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class CustomField:
    name: str
    type: str
    owner: str
    description: str


# Whatever YAML gives, read as yes/no the way Python does (fail safe: any non-empty value of a require_* is yes).
Truthy = Annotated[bool, BeforeValidator(bool)]


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class AgentVariable:
    """One variable the voice agent needs: validated as written in a campaign file (pydantic)."""

    name: str
    source: Literal["field", "custom", "static"]
    field: str | None = None
    value: Any = None
    type: str = "string"
    required: Truthy = False


@dataclass(frozen=True)
class CallingWindow:
    """The campaign's own window (local to the contact, within the legal hours): "HH:MM" [start, end) on `days`;
    `last_call_minutes` closes each open interval that many minutes before its end."""

    start: str = "09:00"
    end: str = "20:00"
    days: tuple[str, ...] = WEEKDAYS[:5]
    last_call_minutes: int = 0


_WINDOW_TIME = re.compile(r"^([01]?\d|2[0-4]):[0-5]\d$")


def _window_time(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(  # noqa: TRY004 - pydantic reports ValueError as the value's problem
            f'not a time: quote it ("{value // 60:02d}:{value % 60:02d}"); YAML reads an unquoted HH:MM as a number'
        )
    if not isinstance(value, str) or not _WINDOW_TIME.match(value.strip()) or value.strip().zfill(5) > "24:00":
        raise ValueError('expected a quoted time "HH:MM", 00:00-24:00')
    return value.strip().zfill(5)


def _weekdays(days: list[str]) -> tuple[str, ...]:
    read = tuple(day.strip().lower()[:3] for day in days)
    if not set(read) <= set(WEEKDAYS):
        raise ValueError(f"expected days among {', '.join(WEEKDAYS)}")
    return read


WindowTime = Annotated[str, BeforeValidator(_window_time)]


class _WindowSettings(BaseModel):
    """A campaign's `window` as written in its file (see CallingWindow)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    start: WindowTime = "09:00"
    end: WindowTime = "20:00"
    days: Annotated[list[str], AfterValidator(_weekdays)] = list(WEEKDAYS[:5])
    last_call_minutes: Annotated[int, PydanticField(ge=0)] = 0


class _AudienceSettings(BaseModel):
    uploads: list[str] | Literal["all"] = "all"
    segments: list[str] | None = None


def _or_default(default: Any) -> BeforeValidator:
    """An empty value (null, "", [], {}) in the file means the default, as a missing key does."""
    return BeforeValidator(lambda value: value or default)


class CampaignSettingsFile(BaseModel):
    """A campaign file (or `_defaults.yaml`) as written; unknown top-level keys are ignored."""

    # before-validators run last-listed first: the default replaces an empty value, then it is read as text
    description: Annotated[str, BeforeValidator(str), _or_default("")] = ""
    default_region: Annotated[str, BeforeValidator(lambda value: str(value).upper()), _or_default("US")] = "US"
    duplicates: DuplicatePolicy = "suppress"
    mapping: str | None = None
    require_consent: Truthy = False
    require_national_dnc: Truthy = False
    ai_voice: Truthy = False
    max_rejected_share: float = 0.10
    audience: Annotated[_AudienceSettings, _or_default({})] = _AudienceSettings()
    window: Annotated[_WindowSettings, _or_default({})] = _WindowSettings()
    agent_variables: Annotated[list[AgentVariable], _or_default([])] = []


# What a wrong value was expected to be, where pydantic's own words would say less (keys without list indices).
_EXPECTED = {
    "window": "a mapping of start, end, days, last_call_minutes",
    "window.days": "a list of weekdays",
    "window.last_call_minutes": "a whole number >= 0",
    "duplicates": f"one of {', '.join(DUPLICATE_POLICIES)}",
    "max_rejected_share": "a number",
    "mapping": "the file name of a mapping",
    "audience": "a mapping of uploads, segments",
    "audience.uploads": "all, or a list of upload ids",
    "audience.segments": "a list of segment names",
    "agent_variables": "a list of variables (name, source, field/value, type, required)",
    "agent_variables.source": "one of field, custom, static",
}


def _config_problem(source: str, error: Any) -> str:
    """One pydantic error as `<source>: <key> is <value> (<what was expected>)`."""
    # without pydantic's names of union members and validators (`list[str]`, `function-before[...]`)
    loc = [
        part for part in error["loc"] if not (isinstance(part, str) and ("[" in part or part.startswith("function")))
    ]
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):  # a model's key / a dataclass's
        parent = key.rpartition(".")[0] or "the file"
        return f"{source}: {parent} has unknown key(s) {loc[-1]}"
    if error["type"] == "missing":
        return f"{source}: {key} is missing"
    if error["type"] == "value_error":
        reason = str(error["ctx"]["error"])
    else:
        plain = re.sub(r"\[\d+\]", "", key)
        reason = f"expected {_EXPECTED[plain]}" if plain in _EXPECTED else error["msg"][0].lower() + error["msg"][1:]
    return f"{source}: {key} is {error['input']!r} ({reason})"


def config_error_from_validation(source: str, errors: ValidationError) -> ConfigError:
    """Every problem of a configuration file on one line (the CLI prints one line)."""
    problems = dict.fromkeys(_config_problem(source, error) for error in errors.errors())
    return ConfigError("; ".join(problems))


def calling_window_from_settings(window: _WindowSettings) -> CallingWindow:
    return CallingWindow(
        start=window.start, end=window.end, days=tuple(window.days), last_call_minutes=window.last_call_minutes
    )

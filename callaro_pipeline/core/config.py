"""Where things live, and the human-edited configuration: campaigns and the custom-field registry.

Runtime state lives under CALLARO_HOME (default: `data/` in the project). Human configuration (campaign
YAML, custom fields) lives under CALLARO_CONFIG (default: `config/` in the project). Setting both to empty
folders gives a fresh, independent installation.

Campaign defaults are safe: a campaign named on import that has no config yet gets the compliance owner's
defaults (`CALLARO_CONFIG/campaigns/_defaults.yaml`, any campaign setting), else the built-in ones, which
require the national DNC list and consent (AI-voice calls need prior express consent). The pipeline never
writes into the tracked `config/`: a campaign it creates is saved under `CALLARO_HOME/campaigns/`, and files
whose name starts with `_` are not campaigns.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic import Field as PydanticField
from pydantic.dataclasses import dataclass as pydantic_dataclass

from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.schema import STANDARD_FIELDS  # noqa: F401 - the mapping's targets, re-exported

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DUPLICATE_POLICIES = ("suppress", "merge", "split")
DuplicatePolicy = Literal["suppress", "merge", "split"]
CUSTOM_FIELD_TYPES = ("string", "integer", "number", "boolean", "date")
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def callaro_home() -> Path:
    home = Path(os.environ.get("CALLARO_HOME") or PROJECT_ROOT / "data").resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def config_dir() -> Path:
    path = Path(os.environ.get("CALLARO_CONFIG") or PROJECT_ROOT / "config").resolve()
    (path / "campaigns").mkdir(parents=True, exist_ok=True)
    return path


def dbt_project_dir() -> Path:
    return Path(os.environ.get("CALLARO_DBT_PROJECT") or PROJECT_ROOT / "dbt_contacts").resolve()


@dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def write_lock(self) -> Path:
        return self.home / "warehouse.lock"

    @property
    def uploads(self) -> Path:
        return self.home / "uploads"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def dnc_files(self) -> Path:
        return self.home / "dnc"

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def gx(self) -> Path:
        return self.home / "gx"

    @property
    def exports(self) -> Path:
        return self.home / "exports"

    def upload_dir(self, upload_id: str) -> Path:
        return self.uploads / check_name(upload_id, "upload id")

    def report_dir(self, upload_id: str) -> Path:
        return self.reports / check_name(upload_id, "upload id")


def paths() -> Paths:
    return Paths(callaro_home())


def check_name(value: str, what: str) -> str:
    """Names that become paths or partition keys: lowercase letters, digits, `-` and `_` only."""
    if not isinstance(value, str) or not _SAFE_NAME.match(value):
        raise ConfigError(
            f"invalid {what} {value!r}: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


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


class _CampaignSettings(BaseModel):
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


def _config_error(source: str, errors: ValidationError) -> ConfigError:
    """Every problem of a configuration file on one line (the CLI prints one line)."""
    problems = dict.fromkeys(_config_problem(source, error) for error in errors.errors())
    return ConfigError("; ".join(problems))


def parse_window(raw: Any, source: str) -> CallingWindow:
    """A campaign's `window` setting; a wrong type or value is refused with the file (`source`), key and value.
    Times must be quoted: YAML reads an unquoted 10:00 as the integer 600."""
    try:
        return _calling_window(_CampaignSettings.model_validate({"window": raw}).window)
    except ValidationError as errors:
        raise _config_error(source, errors) from None


def _calling_window(window: _WindowSettings) -> CallingWindow:
    return CallingWindow(
        start=window.start, end=window.end, days=tuple(window.days), last_call_minutes=window.last_call_minutes
    )


@dataclass
class Campaign:
    name: str
    description: str = ""
    default_region: str = "US"
    duplicates: DuplicatePolicy = "suppress"
    mapping: str | None = None
    require_consent: bool = False
    require_national_dnc: bool = False
    ai_voice: bool = False  # calls with an artificial or prerecorded voice: prior express consent is required
    max_rejected_share: float = 0.10
    audience_uploads: list[str] | Literal["all"] = "all"
    audience_segments: list[str] = field(default_factory=list)
    window: CallingWindow = field(default_factory=CallingWindow)
    agent_variables: list[AgentVariable] = field(default_factory=list)

    @property
    def dnc_sources(self) -> list[str]:
        """Every list that applies: national is scrubbed whenever loaded, and required only if configured."""
        return ["internal", "call_outcome", "national", f"campaign:{self.name}"]

    def to_yaml_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "default_region": self.default_region,
            "duplicates": self.duplicates,
            "mapping": self.mapping,
            "require_consent": self.require_consent,
            "require_national_dnc": self.require_national_dnc,
            "ai_voice": self.ai_voice,
            "max_rejected_share": self.max_rejected_share,
            "audience": {"uploads": self.audience_uploads, "segments": list(self.audience_segments)},
            "window": {
                "start": self.window.start,
                "end": self.window.end,
                "days": list(self.window.days),
                "last_call_minutes": self.window.last_call_minutes,
            },
            "agent_variables": [{k: v for k, v in vars(var).items() if v is not None} for var in self.agent_variables],
        }


DEFAULTS_FILE = "_defaults.yaml"
# Built-in defaults of a campaign nobody configured (no _defaults.yaml): fail safe, nobody callable without the
# national list and documented consent.
SAFE_DEFAULTS: dict[str, Any] = {"require_national_dnc": True, "require_consent": True, "ai_voice": True}


def _created_campaigns_dir() -> Path:
    """Campaigns the pipeline creates: under CALLARO_HOME, never in the tracked configuration."""
    return callaro_home() / "campaigns"


def campaign_path(name: str) -> Path:
    """The campaign's YAML: the human-edited one under CALLARO_CONFIG, else one the pipeline created under
    CALLARO_HOME (the former's path when neither exists)."""
    file_name = f"{check_name(name, 'campaign name')}.yaml"
    configured = config_dir() / "campaigns" / file_name
    created = _created_campaigns_dir() / file_name
    return created if not configured.exists() and created.exists() else configured


def default_settings() -> dict[str, Any]:
    """The settings of a new campaign: the compliance owner's `_defaults.yaml`, else SAFE_DEFAULTS."""
    path = config_dir() / "campaigns" / DEFAULTS_FILE
    if not path.exists():
        return dict(SAFE_DEFAULTS)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"campaign defaults file {DEFAULTS_FILE} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"campaign defaults file {DEFAULTS_FILE} must hold a mapping of settings")
    raw.pop("name", None)
    return raw


def default_campaign(name: str) -> Campaign:
    """What a campaign named for the first time gets (see default_settings)."""
    return _parse_campaign(
        check_name(name, "campaign name"), default_settings(), f"campaign defaults file {DEFAULTS_FILE}"
    )


def _parse_campaign(name: str, raw: dict[str, Any], source: str | None = None) -> Campaign:
    """A campaign from its settings; a wrong type or value is refused with the file (`source`), key and value."""
    try:
        settings = _CampaignSettings.model_validate(raw)
    except ValidationError as errors:
        raise _config_error(source or f"campaign {name}", errors) from None
    return Campaign(
        name=name,
        description=settings.description,
        default_region=settings.default_region,
        duplicates=settings.duplicates,
        mapping=settings.mapping,
        # an AI (artificial or prerecorded) voice needs prior express consent, whatever else is set
        require_consent=settings.require_consent or settings.ai_voice,
        require_national_dnc=settings.require_national_dnc,
        ai_voice=settings.ai_voice,
        max_rejected_share=settings.max_rejected_share,
        audience_uploads=settings.audience.uploads,
        audience_segments=list(settings.audience.segments or []),
        window=_calling_window(settings.window),
        agent_variables=list(settings.agent_variables),
    )


def load_campaign(name: str, *, create: bool = False) -> Campaign:
    """Load a campaign's YAML; with `create`, a campaign named for the first time gets a default config."""
    path = campaign_path(name)
    if not path.exists():
        if not create:
            raise ConfigError(f"unknown campaign {name!r}: no {path.name} under {path.parent}")
        campaign = default_campaign(name)
        save_campaign(campaign)
        return campaign
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"campaign file {path.name} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"campaign file {path.name} must hold a mapping of settings")
    return _parse_campaign(name, raw, f"campaign file {path.name}")


def save_campaign(campaign: Campaign) -> Path:
    """Write a campaign the pipeline made: under CALLARO_HOME/campaigns (a human-edited file stays untouched)."""
    path = _created_campaigns_dir() / f"{check_name(campaign.name, 'campaign name')}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".yaml.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(campaign.to_yaml_dict(), sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def list_campaigns() -> list[str]:
    """Configured and created campaigns; `_defaults.yaml` (and any `_*.yaml`) is not a campaign."""
    folders = (config_dir() / "campaigns", _created_campaigns_dir())
    return sorted({p.stem for folder in folders for p in folder.glob("*.yaml") if not p.name.startswith("_")})


def load_custom_fields() -> dict[str, CustomField]:
    """The custom-field registry: every custom field must be declared with its type, owner and description."""
    path = config_dir() / "custom_fields.yaml"
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"custom_fields.yaml is not valid YAML: {exc}") from None
    registry: dict[str, CustomField] = {}
    for item in raw.get("custom_fields") or []:
        try:
            spec = CustomField(
                name=check_name(str(item["name"]), "custom field name").replace("-", "_"),
                type=str(item.get("type", "string")),
                owner=str(item["owner"]),
                description=str(item["description"]),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"custom_fields.yaml: every field needs name, type, owner, description ({exc})") from None
        if spec.type not in CUSTOM_FIELD_TYPES:
            raise ConfigError(f"custom field {spec.name}: type must be one of {', '.join(CUSTOM_FIELD_TYPES)}")
        registry[spec.name] = spec
    return registry

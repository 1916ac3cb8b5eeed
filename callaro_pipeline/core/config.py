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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from callaro_pipeline.core.campaign_settings import (
    CUSTOM_FIELD_TYPES,
    AgentVariable,
    CallingWindow,
    CampaignSettingsFile,
    CustomField,
    DuplicatePolicy,
    calling_window_from_settings,
    config_error_from_validation,
)
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.project_paths import callaro_home, check_name, config_dir


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
        settings = CampaignSettingsFile.model_validate(raw)
    except ValidationError as errors:
        raise config_error_from_validation(source or f"campaign {name}", errors) from None
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
        window=calling_window_from_settings(settings.window),
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

"""Where the project lives: its root, the callaro home and config directory, the dbt project, and safe names."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from callaro_pipeline.core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def callaro_home() -> Path:
    home = Path(os.environ.get("CALLARO_HOME") or PROJECT_ROOT / "data").resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def config_dir() -> Path:
    path = Path(os.environ.get("CALLARO_CONFIG") or PROJECT_ROOT / "config").resolve()
    (path / "campaigns").mkdir(parents=True, exist_ok=True)
    return path


def whole_number_setting(variable: str, environ: Mapping[str, str] | None = None) -> int | None:
    """A positive whole number from the environment variable (`5_000_000` reads as 5000000), None where unset;
    anything else is a ConfigError naming the variable."""
    text = ((os.environ if environ is None else environ).get(variable) or "").strip().replace("_", "")
    if not text:
        return None
    if not text.isdigit() or int(text) <= 0:
        raise ConfigError(f"{variable} must be a positive whole number, not {text[:20]!r}")
    return int(text)


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

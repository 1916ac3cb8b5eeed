"""Shared fixtures: a fresh, independent installation per test (CALLARO_HOME + CALLARO_CONFIG in tmp_path)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from callaro_pipeline.config import PROJECT_ROOT


def install_callaro_env(base: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty CALLARO_HOME and a copy of the project's config under `base`; returns the home folder."""
    home = base / "home"
    config = base / "config"
    (home / "dagster").mkdir(parents=True)
    shutil.copytree(PROJECT_ROOT / "config", config)
    monkeypatch.setenv("CALLARO_HOME", str(home))
    monkeypatch.setenv("CALLARO_CONFIG", str(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    return home


@pytest.fixture
def callaro_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty CALLARO_HOME and a copy of the project's config; returns the home folder."""
    return install_callaro_env(tmp_path, monkeypatch)


def write_csv(
    path: Path, header: list[str], rows: list[list[str]], *, delimiter: str = ",", encoding: str = "utf-8"
) -> Path:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path

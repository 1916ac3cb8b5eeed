"""Runtime state lives under CALLARO_HOME and CALLARO_CONFIG: a full demo changes nothing git tracks or would add."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from callaro_pipeline.core.project_paths import PROJECT_ROOT


def project_status() -> set[str]:
    """Modified and untracked (not ignored) paths of the project, as `git status` lists them."""
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.splitlines())


def test_a_full_demo_in_a_fresh_home_and_config_leaves_git_status_unchanged(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("the project is not a git checkout here: nothing to compare `git status` with")
    before = project_status()
    environ = {
        **os.environ,
        "CALLARO_HOME": str(tmp_path / "home"),
        "CALLARO_CONFIG": str(tmp_path / "config"),
        "DAGSTER_HOME": str(tmp_path / "home" / "dagster"),
    }
    for variable in ("CALLARO_DBT_PROJECT", "CALLARO_CATALOG", "CALLARO_DATA_PATH"):
        environ.pop(variable, None)
    done = subprocess.run(
        [sys.executable, "-m", "callaro_pipeline.cli", "demo"],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Where to look next" in done.stdout
    assert (tmp_path / "home" / "campaigns" / "demo.yaml").exists()  # an ad-hoc campaign: runtime state, in the home
    assert project_status() == before

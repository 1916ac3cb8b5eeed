"""`dbt build` of the segment models outside Dagster (the CLI's segment commands, `callaro demo`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.defs.segments.assets import build_segments, make_project


def build_models(warehouse: Any, select: Sequence[str] = (), *, dbt_dir: Path | None = None) -> None:
    """`dbt build` segment models outside Dagster, under the warehouse writer lock, then publish the analysts'
    snapshot. ConfigError if dbt fails."""
    project = make_project(dbt_dir, home=warehouse.paths.home)
    if not build_segments(warehouse, select, project=project):
        which = ", ".join(select) if select else "all models"
        raise ConfigError(f"dbt build failed for {which}: see {project.target_path / 'dbt.log'}")

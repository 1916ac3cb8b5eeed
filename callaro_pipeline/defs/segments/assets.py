"""Segment models: the dbt project `dbt_contacts/` as Dagster assets, downstream of the contact book.

- Every dbt source of the pipeline's tables maps to the asset key `contacts` (the contact book asset), so the
  segment views sit downstream of it; models get keys `staging/<model>` and `segments/<model>`, all in the
  group `segments`; dbt tests are asset checks (dagster-dbt's default).
- The dbt run holds the warehouse writer lock (`Warehouse.lock()`) and runs in the `duckdb` pool like every
  other writer; dbt attaches the lake named by CALLARO_DBT_CATALOG and CALLARO_DBT_DATA_PATH (profiles.yml
  inside the project).
- A manifest must exist before `@dbt_assets` can be defined: `ensure_manifest()` runs `dbt compile` (against an
  in-memory database: it never opens the warehouse) when the manifest is missing, not compiled, or older than
  the project's files or the home's filter segments (e.g. after `callaro segment create`);
  `DbtProject.prepare_if_dev()` does the same under `dagster dev` only. Both run at import. The compiled SQL is
  what `segments.ensure_segment_views` uses to make the views at a fresh home's first import.
- Filter segments live under CALLARO_HOME (`segments.home_models_dir`): dbt sees them through
  CALLARO_SEGMENT_MODELS, which `dbt_env` sets for every dbt process; a home with filter segments keeps its
  own manifest (`segments.target_dir`).
"""

import contextlib
import importlib.metadata
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from filelock import FileLock
from packaging import version

from callaro_pipeline.core import segments
from callaro_pipeline.core.project_paths import dbt_project_dir
from callaro_pipeline.defs.partitions import WAREHOUSE_POOL
from callaro_pipeline.storage.lake import LakeLocation
from callaro_pipeline.storage.warehouse import Warehouse

CATALOG_ENV = "CALLARO_DBT_CATALOG"
DATA_PATH_ENV = "CALLARO_DBT_DATA_PATH"
BUSY_TIMEOUT_ENV = "CALLARO_DBT_CATALOG_BUSY_TIMEOUT_MS"
SEGMENTS_GROUP = "segments"
CONTACTS_KEY = dg.AssetKey(["contacts"])
# dbt source table -> the Dagster asset that writes it. Sources not listed keep their table name as key (they
# only matter if a model reads them). segment_filters is written by `callaro segment create`, next to the
# contact book, so it is folded into the same upstream asset.
SOURCE_ASSET_KEYS: dict[str, dg.AssetKey] = {
    "contacts": CONTACTS_KEY,
    "campaign_contacts": CONTACTS_KEY,
    "segment_filters": CONTACTS_KEY,
}
# how a manifest is made (`ensure_manifest`, and dagster-dbt's preparer under `dagster dev`)
COMPILE_ARGS = ["compile", "--quiet"]
_PROJECT_INPUTS = ("models", "macros", "seeds", "tests", "snapshots", "analyses")
_PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml")


@contextlib.contextmanager
def dbt_env(
    lake: LakeLocation | None, *, home: Path | str | None = None, project: DbtProject | None = None
) -> Iterator[None]:
    """Set CALLARO_DBT_CATALOG and CALLARO_DBT_DATA_PATH (the lake), CALLARO_SEGMENT_MODELS (the home's filter segments, relative to the project),
    DBT_TARGET_PATH (the project's target for this home) and DBT_LOG_PATH (the home's) for dbt subprocesses (DbtCliResource passes os.environ on), then restore them.

    With None, dbt gets an empty in-memory lake (parse and compile never need the warehouse, nor its lock). The
    home's models are only shown to a project whose target keeps their compiled files inside it (a project
    made for another home does not see them: `segments.dbt_models_path_within`). CALLARO_DBT_CATALOG_BUSY_TIMEOUT_MS
    gives a SQLite catalog the pipeline's lock wait (storage/lake.py).
    """
    values = {
        CATALOG_ENV: lake.catalog if lake else ":memory:",
        # an in-memory lake writes no file (its views hold no data); the path only has to be absolute
        DATA_PATH_ENV: lake.data_path if lake else str(segments.home_dbt_dir(home) / "no-data") + "/",
        BUSY_TIMEOUT_ENV: str(lake.catalog_busy_timeout_ms or "") if lake else "",
    }
    project_dir = project.project_dir if project else None
    target = project.target_path if project else segments.target_dir(None, home)
    safe = segments.dbt_models_path_within(target, project_dir, home)
    values[segments.MODELS_ENV] = segments.dbt_models_path(project_dir, home) if safe else "no-filter-models"
    # runs in Dagster write into a unique folder under DBT_TARGET_PATH (default: the project's target/)
    values["DBT_TARGET_PATH"] = str(Path(project_dir or dbt_project_dir()) / target)
    values["DBT_LOG_PATH"] = str(segments.home_dbt_dir(home) / "logs")
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def make_project(project_dir: Path | str | None = None, *, home: Path | str | None = None) -> DbtProject:
    """The dbt project (profiles.yml lives in the project directory), as the home `home` sees it: its manifest
    is compiled (`dbt compile`), in the project's target/ or, once the home has filter segments, the home's."""
    directory = Path(project_dir) if project_dir else dbt_project_dir()
    return DbtProject(
        project_dir=directory,
        profiles_dir=directory,
        target_path=segments.target_dir(directory, home),
        prepare_project_cli_args=COMPILE_ARGS,
    )


def _compiled(manifest: Path) -> bool:
    """Every view model carries its compiled SQL (a `dbt parse`, or a `dbt build --select`, leaves some out)."""
    try:
        nodes = json.loads(manifest.read_text(encoding="utf-8")).get("nodes", {})
    except (OSError, ValueError):
        return False
    return all(
        node.get("compiled_code")
        for node in nodes.values()
        if node.get("resource_type") == "model" and node.get("config", {}).get("materialized") == "view"
    )


def manifest_is_stale(project: DbtProject, *, home: Path | str | None = None) -> bool:
    """True if the manifest is missing, not compiled, or older than any model, macro, seed, test or project
    file, or than the home's filter segments."""
    manifest = Path(project.manifest_path)
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    root = Path(project.project_dir)
    candidates = [root / name for name in (*_PROJECT_FILES, ".dbtignore")]
    folders = [root / folder for folder in _PROJECT_INPUTS]
    folders.append(segments.filters_dir(home))
    for folder in folders:
        if folder.is_dir():
            candidates.append(folder)  # a deleted file changes its directory's mtime
            candidates.extend(folder.rglob("*"))
    return any(p.exists() and p.stat().st_mtime > built for p in candidates) or not _compiled(manifest)


def ensure_manifest(project: DbtProject | None = None, *, force: bool = False, home: Path | str | None = None) -> Path:
    """Make sure the manifest exists, is compiled and current (`dbt compile`, a few seconds); returns its path."""
    project = project or segments_project
    if force or manifest_is_stale(project, home=home):
        target = Path(project.manifest_path).parent
        target.mkdir(parents=True, exist_ok=True)
        # two processes starting at once (the UI and a command, parallel test workers) compile one after the other
        with FileLock(str(target / ".compile.lock")):
            if force or manifest_is_stale(project, home=home):
                # not `project.preparer.prepare`: its resource runs `dbt` from PATH and asks it `dbt --version`
                with dbt_env(None, home=home, project=project):
                    dbt_resource(project).cli(COMPILE_ARGS, target_path=project.target_path).wait()
    return Path(project.manifest_path)


def installed_dbt() -> Path:
    """Where the dbt of this Python's environment is (the dbt-core package installed with the pipeline)."""
    return Path(sys.executable).parent / ("dbt.exe" if os.name == "nt" else "dbt")


def dbt_executable() -> str:
    """The dbt installed next to this Python (`callaro` run by its full path, e.g. from cron, has no virtualenv
    on PATH), else `dbt` on PATH."""
    sibling = installed_dbt()
    return str(sibling) if sibling.is_file() else shutil.which("dbt") or "dbt"


class SegmentsDbtCli(DbtCliResource):
    """dagster-dbt's resource, without its `dbt --version` subprocess per resource instance (once per run: a
    whole dbt start-up, ~4 s of CPU, before every segment build). The dbt next to this Python is the dbt-core
    package installed with it, whose version its metadata gives; any other executable is still asked."""

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) == installed_dbt():
            return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version


def dbt_resource(project: DbtProject | None = None) -> DbtCliResource:
    """The `dbt` resource the segment assets need."""
    return SegmentsDbtCli(project_dir=project or segments_project, dbt_executable=dbt_executable())


class SegmentsTranslator(DagsterDbtTranslator):
    """dbt nodes -> Dagster assets: sources are the contact book, models are staging/* or segments/*."""

    def __init__(self, source_asset_keys: Mapping[str, dg.AssetKey] | None = None):
        super().__init__(
            settings=DagsterDbtTranslatorSettings(
                enable_asset_checks=True,
                # several pipeline tables (contacts, campaign_contacts, segment_filters) share one asset
                enable_duplicate_source_asset_keys=True,
            )
        )
        self.source_asset_keys = dict(SOURCE_ASSET_KEYS if source_asset_keys is None else source_asset_keys)

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        name = dbt_resource_props["name"]
        if dbt_resource_props["resource_type"] == "source":
            return self.source_asset_keys.get(name, dg.AssetKey([name]))
        fqn = dbt_resource_props.get("fqn") or []
        if len(fqn) > 2 and fqn[1] == "segments":
            return dg.AssetKey(["segments", name])
        return dg.AssetKey(["staging", name])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return SEGMENTS_GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        return super().get_owners(dbt_resource_props) or ["team:analytics"]

    def get_asset_check_spec(
        self, asset_spec: dg.AssetSpec, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetCheckSpec | None:
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        return spec._replace(description=dbt_test_description(manifest["nodes"].get(unique_id, {})))


def dbt_test_description(test: Mapping[str, Any]) -> str:
    """A sentence for a dbt test without its own description (generic tests: what they assert, on what)."""
    if test.get("description"):
        return str(test["description"])
    meta = test.get("test_metadata") or {}
    kwargs = meta.get("kwargs") or {}
    column = kwargs.get("column_name") or test.get("column_name") or "the row"
    kind = meta.get("name")
    if kind == "not_null":
        return f"dbt test: `{column}` is never null."
    if kind == "unique":
        return f"dbt test: `{column}` is unique."
    if kind == "accepted_values":
        return f"dbt test: `{column}` only takes the values {', '.join(map(str, kwargs.get('values', [])))}."
    if kind == "relationships":
        return f"dbt test: every `{column}` exists in {kwargs.get('to', 'its parent')}.{kwargs.get('field', column)}."
    if kind:
        return f"dbt test `{kind}` on `{column}`."
    where = test.get("original_file_path") or test.get("name") or "a SQL file"
    return f"dbt singular test ({where}): holds when its query returns no rows."


def run_dbt(warehouse: Warehouse, args: Sequence[str], *, project: DbtProject | None = None) -> bool:
    """Run one dbt command outside Dagster (CLI: build a new segment) under the writer lock; True on success.

    The schema (including segment_filters) is applied first, so dbt's sources exist on a fresh warehouse.
    """
    project = project or segments_project
    with warehouse.connect():
        pass
    with warehouse.lock() as lake, dbt_env(lake, home=warehouse.paths.home, project=project):
        # the project's own target/: dbt rewrites target/manifest.json, so Dagster sees new models on reload
        invocation = dbt_resource(project).cli(list(args), raise_on_error=False, target_path=project.target_path)
        invocation.wait()
    return invocation.is_successful()


def build_segments(warehouse: Warehouse, select: Sequence[str] = (), *, project: DbtProject | None = None) -> bool:
    """`dbt build` (optionally `--select` some models, e.g. a new filter segment)."""
    return run_dbt(warehouse, ["build", *(["--select", *select] if select else [])], project=project)


def build_segment_assets(project: DbtProject, *, name: str = "segment_models") -> dg.AssetsDefinition:
    """The @dbt_assets for a project (tests build them from a temporary copy of the project)."""

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=SegmentsTranslator(),
        name=name,
        pool=WAREHOUSE_POOL,
    )
    def _segment_models(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse):
        with warehouse.connect():  # apply the schema: segment_filters must exist before dbt reads it
            pass
        with warehouse.lock() as lake, dbt_env(lake, home=warehouse.paths.home, project=project):
            yield from dbt.cli(["build"], context=context).stream()

    return _segment_models


segments_project = make_project()
with dbt_env(None, project=segments_project):
    segments_project.prepare_if_dev()
ensure_manifest(segments_project)
segment_models = build_segment_assets(segments_project)

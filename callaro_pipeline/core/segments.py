"""Segments, the pure part: names, where their dbt files live, and the text of a filter segment's model.

A filter segment (`callaro segment create NAME --where ...`) is a dbt model under CALLARO_HOME
(`<home>/dbt/models/segments/filters/`), never in the tracked project: dbt reads that folder through
`model-paths` (the env var CALLARO_SEGMENT_MODELS). The model file holds only code-made SQL (allowlisted
column expressions, operators, the validated name); the values are rows of `segment_filters`, and the original
`--where` is kept in a sidecar `<name>.json` that dbt does not read. The SQL against the warehouse is
`callaro_pipeline.storage.segments`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.filter_parser import field_types
from callaro_pipeline.core.filters import NOW_UTC, Condition, select_sql
from callaro_pipeline.core.project_paths import callaro_home, check_name, dbt_project_dir

SEGMENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MODELS_ENV = "CALLARO_SEGMENT_MODELS"  # dbt_project.yml adds it to model-paths
FILTERS_SUBDIR = Path("segments") / "filters"  # under the home's models folder: fqn segments/filters/<name>
STAGING_CONTACTS = "staging.stg_contacts"  # what a segment reads (dbt: ref('stg_contacts'))
FILTER_ROWS = "main.segment_filters"  # dbt: source('callaro', 'segment_filters')


# --- where things live ------------------------------------------------------------------------------------


def home_dbt_dir(home: Path | str | None = None) -> Path:
    """The home's dbt state: `models/` (filter segments) and, once it has any, `target/` (its manifest)."""
    return Path(home).resolve() / "dbt" if home else callaro_home() / "dbt"


def home_models_dir(home: Path | str | None = None) -> Path:
    return home_dbt_dir(home) / "models"


def filters_dir(home: Path | str | None = None) -> Path:
    return home_models_dir(home) / FILTERS_SUBDIR


def has_filter_models(home: Path | str | None = None) -> bool:
    directory = filters_dir(home)
    return directory.is_dir() and any(directory.glob("*.sql"))


def dbt_models_path(project_dir: Path | str | None = None, home: Path | str | None = None) -> str:
    """The home's models folder as dbt's `model-paths` needs it: RELATIVE to the project. (With an absolute
    path dbt writes each compiled model over its own source file: it joins the target folder and the file's
    original path.)"""
    return os.path.relpath(home_models_dir(home), Path(project_dir or dbt_project_dir()).resolve())


def dbt_models_path_within(
    target: Path | str, project_dir: Path | str | None = None, home: Path | str | None = None
) -> bool:
    """True if dbt, writing into `target`, keeps the compiled files of the home's models inside it: it writes
    `<target>/compiled/<project>/<original path>`, and `<original path>` climbs out of the project. A target
    made for another home (or too shallow) is not given the home's models at all (`dbt_env`)."""
    target = Path(target) if Path(target).is_absolute() else Path(project_dir or dbt_project_dir()) / target
    base = os.path.normpath(target / "compiled" / "callaro_contacts")
    written = Path(os.path.normpath(os.path.join(base, dbt_models_path(project_dir, home), "x")))
    return any(written.is_relative_to(os.path.normpath(root)) for root in (target, home_dbt_dir(home) / "target"))


def target_dir(project_dir: Path | str | None = None, home: Path | str | None = None) -> Path:
    """Where dbt writes the manifest: the project's `target/` while the home has no filter segments (every such
    home sees the same models), else under the home's `dbt/target/` (its models include its filter segments).

    dbt writes a compiled file at `<target>/compiled/<project>/<original path>`, and a filter model's original
    path climbs out of the project (`../../home/dbt/models/...`): the target is nested deep enough that those
    files land in the home's `dbt/target/` (`dbt_models_path_within`)."""
    if not has_filter_models(home):
        return Path(project_dir or dbt_project_dir()) / "target"
    climbs = Path(dbt_models_path(project_dir, home)).parts.count("..")
    return home_dbt_dir(home) / "target" / Path(*(["nested"] * max(0, climbs - 2)), "")


# --- SQL (code-made only) ---------------------------------------------------------------------------------

# the filter segment's rows in the warehouse; `name` has passed check_segment_name
_FILTER_ROWS_SOURCE = """(
        select position, field, operator, value_json
        from {relation}
        where segment = '{name}'
    )"""


def model_sql(name: str, conditions: list[Condition]) -> str:
    """The dbt model for a filter segment: only allowlisted identifiers; values come from segment_filters."""
    name = check_segment_name(name)
    fields = ", ".join(cond.describe() for cond in conditions)
    header = (
        f"-- Filter segment {name}: generated by `callaro segment create`, do not edit by hand.\n"
        f"-- Conditions: {fields}. Their values are rows of segment_filters (data, never SQL text).\n"
    )
    body = select_sql(
        conditions,
        contacts="{{ ref('stg_contacts') }}",
        filters=_FILTER_ROWS_SOURCE.format(relation="{{ source('callaro', 'segment_filters') }}", name=name),
        now="{{ utc_now() }}",
    )
    return header + body


def view_sql(name: str, conditions: list[Condition]) -> str:
    """The same model as plain SQL (what dbt compiles it to): creates the view without a dbt run."""
    name = check_segment_name(name)
    return select_sql(
        conditions,
        contacts=STAGING_CONTACTS,
        filters=_FILTER_ROWS_SOURCE.format(relation=FILTER_ROWS, name=name),
        now=NOW_UTC,
    )


def check_segment_name(name: str) -> str:
    check_name(name, "segment name")
    if not SEGMENT_NAME.match(name):
        raise ConfigError(
            f"invalid segment name {name[:80]!r}: use lowercase letters, digits and '_', starting with a letter "
            "(it becomes a table name)"
        )
    return name


def segment_contacts_sql(name: str) -> str:
    """How audiences select a segment's members."""
    return f'select contact_id from segments."{check_segment_name(name)}"'  # noqa: S608 - validated name


def load_manifest(project_dir: Path, home: Path | str | None) -> dict[str, Any]:
    """The first compiled manifest found (the home's, then the project's); {} when there is none yet."""
    for directory in dict.fromkeys([target_dir(project_dir, home), project_dir / "target"]):
        path = directory / "manifest.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if any(node.get("compiled_code") for node in manifest.get("nodes", {}).values()):
            return manifest
    return {}


def dependency_order(nodes: dict[str, Mapping[str, Any]]) -> list[str]:
    """dbt manifest node ids, each after the nodes it depends on (within `nodes`)."""
    done: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        for parent in nodes[node_id].get("depends_on", {}).get("nodes", []):
            if parent in nodes:
                visit(parent)
        done.append(node_id)

    for node_id in sorted(nodes):
        visit(node_id)
    return done


# --- filter segments on disk ------------------------------------------------------------------------------


def filter_definitions(home: Path | str | None) -> list[dict[str, Any]]:
    """The home's filter segments, from their sidecars (name, where, conditions)."""
    result = []
    for path in sorted(filters_dir(home).glob("*.json")) if filters_dir(home).is_dir() else []:
        if not path.with_suffix(".sql").exists():
            continue
        try:
            sidecar = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            sidecar = {}
        if sidecar.get("name") == path.stem and SEGMENT_NAME.match(path.stem):
            result.append(sidecar)
    return result


def stored_conditions(sidecar: Mapping[str, Any], registry: Mapping[str, CustomField]) -> list[Condition]:
    types = field_types(registry)
    return [
        Condition(
            field=c["field"],
            operator=c["operator"],
            value=c["value"],
            type=c.get("type") or types.get(c["field"], "text"),
        )
        for c in sidecar["conditions"]
    ]


def project_model_names(dbt_dir: Path) -> set[str]:
    """The tracked project's models and seeds (the legacy filters folder is ignored by dbt: .dbtignore)."""
    legacy = dbt_dir / "models" / "segments" / "filters"
    models = {p.stem for p in (dbt_dir / "models").rglob("*.sql") if legacy not in p.parents}
    return models | {p.stem for p in (dbt_dir / "seeds").glob("*.csv")}


def _contact_columns(dbt_dir: Path) -> list[dict[str, str]]:
    """stg_contacts' documented columns: generated segments return the same columns, so reuse the docs."""
    for path in (dbt_dir / "models" / "staging").glob("*.yml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for model in doc.get("models") or []:
            if model.get("name") == "stg_contacts":
                return [{"name": c["name"], "description": c.get("description", "")} for c in model["columns"]]
    return [{"name": "contact_id", "description": "The contact."}]


def filter_files(home: Path | str | None, name: str) -> list[Path]:
    return [filters_dir(home) / f"{name}{suffix}" for suffix in (".sql", ".yml", ".json")]


@dataclass(frozen=True)
class ModelFiles:
    sql: str
    properties: str
    sidecar: str


def model_files(name: str, where: str, conditions: list[Condition], dbt_dir: Path) -> ModelFiles:
    fields = ", ".join(cond.describe() for cond in conditions)
    columns: list[dict[str, Any]] = _contact_columns(dbt_dir)
    for column in columns:
        if column["name"] == "contact_id":
            column["data_tests"] = ["not_null", "unique"]
    properties = {
        "version": 2,
        "models": [
            {
                "name": name,
                # allowlisted field names and operators only: dbt renders descriptions through Jinja
                "description": f"Filter segment made with `callaro segment create` on: {fields}. "
                "Values are stored in the segment_filters table; see the sidecar JSON for the original --where.",
                "config": {"meta": {"callaro": {"kind": "filter"}}},
                "columns": columns,
            }
        ],
    }
    sidecar = {
        "name": name,
        "where": where,
        "conditions": [
            {"field": c.field, "operator": c.operator, "value": c.value, "type": c.type} for c in conditions
        ],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return ModelFiles(
        sql=model_sql(name, conditions),
        properties=yaml.safe_dump(properties, sort_keys=False, width=120),
        sidecar=json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n",
    )


def list_segments(dbt_dir: Path | str | None = None, home: Path | str | None = None) -> list[dict[str, Any]]:
    """Every segment: the project's SQL models and the home's filter segments (name, kind, description, where,
    path)."""
    dbt_dir = Path(dbt_dir or dbt_project_dir())
    root = dbt_dir / "models" / "segments"
    descriptions: dict[str, str] = {}
    for path in sorted(root.rglob("*.yml")) if root.exists() else []:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for model in doc.get("models") or []:
            descriptions[str(model.get("name"))] = str(model.get("description") or "").strip()
    result = [
        {"name": p.stem, "kind": "sql", "description": descriptions.get(p.stem, ""), "where": None, "path": p}
        for p in sorted(root.rglob("*.sql"))
        if root.exists() and "filters" not in p.relative_to(root).parts  # legacy location, ignored by dbt
    ]
    for sidecar in filter_definitions(home):
        result.append(
            {
                "name": sidecar["name"],
                "kind": "filter",
                "description": "",
                "where": sidecar.get("where"),
                "path": filters_dir(home) / f"{sidecar['name']}.sql",
            }
        )
    return sorted(result, key=lambda item: item["name"])

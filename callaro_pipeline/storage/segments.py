"""Segments: dbt models over the contact book, in the warehouse's `segments` schema.

Two kinds:
- SQL segments, written by analysts in the tracked project (`dbt_contacts/models/segments/*.sql`);
- filter segments, made without SQL: `callaro segment create NAME --where "lead_source = webinar"`. Their
  model files are installation state and live under CALLARO_HOME (`<home>/dbt/models/segments/filters/`),
  never in the tracked project: dbt reads that folder through `model-paths` (the env var
  CALLARO_SEGMENT_MODELS, set by the pipeline whenever it runs dbt), so two installations never see each
  other's segments.

The filter language is `callaro_pipeline.core.filters` (the same one `contacts update|remove --where` uses). Values
are DATA: rows of the warehouse table `segment_filters`, read by the view at query time; the model file holds
only code-made SQL (allowlisted column expressions, operators, the validated name) — no user text, not even in
comments or YAML descriptions, because dbt renders both through Jinja. The original `--where` is kept in a
sidecar `<name>.json` that dbt does not read.

The views exist from the first contact-book write on (`ensure_segment_views`, pure SQL from the compiled
manifest, milliseconds): a fresh home can query `segments.*` after its first import, and `segment create` works
there. `dbt build` (the rebuild job, `callaro demo`) keeps maintaining them with their tests.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.config import load_custom_fields
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.filter_parser import (
    Condition,
    field_types,
    parse_where,
)
from callaro_pipeline.core.filters import NOW_UTC, bound_select_sql, select_sql, value_json
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


def preview_segment_size(con: duckdb.DuckDBPyConnection, conditions: list[Condition]) -> int:
    """How many contacts match, computed on the contact book with the values as bound parameters."""
    sql, params = bound_select_sql(conditions)
    return int(con.execute(f"select count(*) from ({sql}) as matched", params).fetchone()[0])  # noqa: S608


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


# --- the views, without dbt -------------------------------------------------------------------------------


def views_missing(con: duckdb.DuckDBPyConnection) -> bool:
    """True until the segment views were made in this warehouse (a fresh home): cheap, inside any transaction."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = 'staging' AND table_name = 'stg_contacts'"
    ).fetchone()[0]
    return not found


def _existing_relations(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    return {
        (schema, name)
        for schema, name in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema IN ('staging', 'segments')"
        ).fetchall()
    }


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _load_manifest(project_dir: Path, home: Path | str | None) -> dict[str, Any]:
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


def _create_seed(con: duckdb.DuckDBPyConnection, node: Mapping[str, Any], project_dir: Path) -> None:
    path = project_dir / node["original_file_path"]
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    header, data = rows[0], rows[1:]
    types = {k.lower(): v for k, v in (node.get("config", {}).get("column_types") or {}).items()}
    columns = ", ".join(f"{_quote(c)} {types.get(c.lower(), 'varchar')}" for c in header)
    relation = f"{_quote(node['schema'])}.{_quote(node.get('alias') or node['name'])}"
    con.execute(f"CREATE TABLE IF NOT EXISTS {relation} ({columns})")
    if data:
        marks = ", ".join("?" for _ in header)
        con.executemany(f"INSERT INTO {relation} VALUES ({marks})", data)  # noqa: S608 - quoted identifiers


def _ordered(nodes: dict[str, Mapping[str, Any]]) -> list[str]:
    """Node ids, each after the nodes it depends on (within `nodes`)."""
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


def create_missing_views(
    con: duckdb.DuckDBPyConnection, *, project_dir: Path | str | None = None, home: Path | str | None = None
) -> list[str]:
    """Create the staging and segment views (and seeds) that do not exist yet, from the compiled dbt manifest,
    then the home's filter segments. Runs in autocommit (a broken model fails alone); returns what failed.

    Only missing relations are made: `dbt build` owns them afterwards (and replaces them with its own)."""
    project_dir = Path(project_dir or dbt_project_dir())
    manifest = _load_manifest(project_dir, home)
    existing = _existing_relations(con)
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute("CREATE SCHEMA IF NOT EXISTS segments")
    own_filters = filters_dir(home).resolve()
    nodes = {
        node_id: node
        for node_id, node in manifest.get("nodes", {}).items()
        if node.get("resource_type") in ("model", "seed")
        and node.get("config", {}).get("enabled", True)
        and own_filters not in (project_dir / node.get("original_file_path", "")).resolve().parents
    }
    failed: list[str] = []
    broken: set[str] = set()
    for node_id in _ordered(nodes):
        node = nodes[node_id]
        schema, name = node["schema"], node.get("alias") or node["name"]
        if (schema, name) in existing:
            continue
        if any(parent in broken for parent in node.get("depends_on", {}).get("nodes", [])):
            broken.add(node_id)
            failed.append(name)
            continue
        try:
            if node["resource_type"] == "seed":
                _create_seed(con, node, project_dir)
            elif node.get("config", {}).get("materialized") == "view" and node.get("compiled_code"):
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
                con.execute(f"CREATE VIEW IF NOT EXISTS {_quote(schema)}.{_quote(name)} AS {node['compiled_code']}")
            else:
                continue  # tables, incrementals, ephemerals: dbt's job
        except (duckdb.Error, OSError, KeyError, IndexError):
            broken.add(node_id)
            failed.append(name)
    registry = load_custom_fields()
    for segment in _filter_definitions(home):
        if ("segments", segment["name"]) in existing:
            continue
        try:
            conditions = _stored_conditions(segment, registry)
            con.execute(
                f'CREATE VIEW IF NOT EXISTS segments."{segment["name"]}" AS {view_sql(segment["name"], conditions)}'
            )
        except (duckdb.Error, ConfigError, KeyError, TypeError):
            failed.append(str(segment.get("name")))
    return failed


def ensure_segment_views(warehouse: Any, *, project_dir: Path | str | None = None) -> list[str]:
    """`create_missing_views` on its own connection (after the caller's transaction: a failed view must not
    abort an import). Returns the models that could not be made (dbt build will say why)."""
    with warehouse.connect() as con:
        return create_missing_views(con, project_dir=project_dir, home=warehouse.paths.home)


# --- filter segments on disk and in the warehouse ---------------------------------------------------------


def _filter_definitions(home: Path | str | None) -> list[dict[str, Any]]:
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


def _stored_conditions(sidecar: Mapping[str, Any], registry: Mapping[str, CustomField]) -> list[Condition]:
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


def _project_model_names(dbt_dir: Path) -> set[str]:
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


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """True inside an explicit transaction (autocommit gives every statement a new id). Probing with a nested
    BEGIN would not do: its error aborts the caller's transaction."""
    first = con.execute("SELECT current_transaction_id()").fetchone()[0]
    return con.execute("SELECT current_transaction_id()").fetchone()[0] == first


def _replace_rows(con: duckdb.DuckDBPyConnection, name: str, conditions: list[Condition] | None) -> None:
    """Replace the segment's rows in segment_filters (and its view), in one transaction (or the caller's)."""
    own = not _in_transaction(con)
    if own:
        con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM segment_filters WHERE segment = ?", [name])
        now = datetime.now(UTC).replace(tzinfo=None)
        for position, cond in enumerate(conditions or [], start=1):
            con.execute(
                "INSERT INTO segment_filters (segment, position, field, operator, value_json, created_at) "
                "VALUES (?, ?, ?, ?, CAST(? AS JSON), ?)",
                [name, position, cond.field, cond.operator, value_json(cond), now],
            )
        if conditions is None:
            con.execute(f'DROP VIEW IF EXISTS segments."{name}"')
        elif not views_missing(con):
            con.execute("CREATE SCHEMA IF NOT EXISTS segments")
            con.execute(f'CREATE OR REPLACE VIEW segments."{name}" AS {view_sql(name, conditions)}')
    except BaseException:
        if own:
            con.execute("ROLLBACK")
        raise
    if own:
        con.execute("COMMIT")


def _filter_files(home: Path | str | None, name: str) -> list[Path]:
    return [filters_dir(home) / f"{name}{suffix}" for suffix in (".sql", ".yml", ".json")]


@dataclass(frozen=True)
class _Files:
    sql: str
    properties: str
    sidecar: str


def _model_files(name: str, where: str, conditions: list[Condition], dbt_dir: Path) -> _Files:
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
    return _Files(
        sql=model_sql(name, conditions),
        properties=yaml.safe_dump(properties, sort_keys=False, width=120),
        sidecar=json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n",
    )


def create_filter_segment(
    con: duckdb.DuckDBPyConnection,
    name: str,
    where: str,
    *,
    home: Path | str | None = None,
    dbt_dir: Path | str | None = None,
    registry: Mapping[str, CustomField] | None = None,
    replace: bool = False,
) -> Path:
    """Store the filter's conditions as rows, make its view (once the segment views exist) and write its dbt
    model under the home; returns the model path. Nothing is kept if any step fails.

    `con` is a read-write connection to the warehouse of `home` (default CALLARO_HOME); inside the caller's
    transaction, the caller's rollback takes the rows and the view back (the files are written last).
    """
    name = check_segment_name(name)
    conditions = parse_where(where, registry)
    dbt_dir = Path(dbt_dir or dbt_project_dir())
    model_path = filters_dir(home) / f"{name}.sql"
    if name in _project_model_names(dbt_dir):
        raise ConfigError(f"segment name {name!r} is already used by a dbt model or seed; pick another name")
    if model_path.exists() and not replace:
        raise ConfigError(f"segment {name!r} already exists; delete it first (callaro segment delete {name})")
    files = _model_files(name, where, conditions, dbt_dir)
    _replace_rows(con, name, conditions)
    written: list[Path] = []
    try:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        for path, text in zip(
            _filter_files(home, name)[::-1], (files.sidecar, files.properties, files.sql), strict=True
        ):
            _write_atomic(path, text)  # the .sql last: without it the other two are not a model
            written.append(path)
    except OSError as error:
        for path in written:
            path.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the segment's model under {model_path.parent}: {error.strerror}") from None
    return model_path


def delete_filter_segment(con: duckdb.DuckDBPyConnection, name: str, *, home: Path | str | None = None) -> None:
    """Remove a filter segment: its rows, its view and its model files."""
    name = check_segment_name(name)
    files = _filter_files(home, name)
    known = (
        files[0].exists() or con.execute("SELECT count(*) FROM segment_filters WHERE segment = ?", [name]).fetchone()[0]
    )
    if not known:
        if name in _project_model_names(dbt_project_dir()):
            raise ConfigError(f"segment {name!r} is a SQL model of the dbt project: remove its file there instead")
        raise ConfigError(f"no filter segment named {name!r} (see callaro segment list)")
    _replace_rows(con, name, None)
    for path in files:  # the .sql first: from then on dbt no longer sees a model
        path.unlink(missing_ok=True)


def build_models(warehouse: Any, select: Sequence[str] = (), *, dbt_dir: Path | None = None) -> None:
    """`dbt build` segment models outside Dagster, under the warehouse writer lock, then publish the analysts'
    snapshot. ConfigError if dbt fails."""
    from callaro_pipeline.defs.segments import assets as dbt_segments  # imports dagster-dbt: only when needed

    project = dbt_segments.make_project(dbt_dir, home=warehouse.paths.home)
    if not dbt_segments.build_segments(warehouse, select, project=project):
        which = ", ".join(select) if select else "all models"
        raise ConfigError(f"dbt build failed for {which}: see {project.target_path / 'dbt.log'}")


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
    for sidecar in _filter_definitions(home):
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

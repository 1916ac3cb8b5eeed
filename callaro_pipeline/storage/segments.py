"""Segments in the warehouse: dbt models over the contact book, in its `segments` schema.

Two kinds:
- SQL segments, written by analysts in the tracked project (`dbt_contacts/models/segments/*.sql`);
- filter segments, made without SQL: `callaro segment create NAME --where "lead_source = webinar"`. Their
  model files are installation state under CALLARO_HOME (names, paths and file text:
  `callaro_pipeline.core.segments`); their values are rows of the warehouse table `segment_filters`, read by the
  view at query time.

The views exist from the first contact-book write on (`ensure_segment_views`, pure SQL from the compiled
manifest, milliseconds): a fresh home can query `segments.*` after its first import, and `segment create` works
there. `dbt build` (the rebuild job, `callaro demo`; `callaro_pipeline.defs.segments.builds`) keeps maintaining
them with their tests.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.config import load_custom_fields
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.filter_parser import Condition, parse_where
from callaro_pipeline.core.filters import bound_select_sql, value_json
from callaro_pipeline.core.project_paths import dbt_project_dir
from callaro_pipeline.core.segments import (
    check_segment_name,
    dependency_order,
    filter_definitions,
    filter_files,
    filters_dir,
    load_manifest,
    model_files,
    project_model_names,
    stored_conditions,
    view_sql,
)


def preview_segment_size(con: duckdb.DuckDBPyConnection, conditions: list[Condition]) -> int:
    """How many contacts match, computed on the contact book with the values as bound parameters."""
    sql, params = bound_select_sql(conditions)
    return int(con.execute(f"select count(*) from ({sql}) as matched", params).fetchone()[0])  # noqa: S608


# --- the views, without dbt -------------------------------------------------------------------------------


def views_missing(con: duckdb.DuckDBPyConnection) -> bool:
    """True until the segment views were made in this warehouse (a fresh home): cheap, inside any transaction.
    `duckdb_views()`, not information_schema.tables: that lists every table with its size estimate, one catalog
    query per lake table (~40 ms per import)."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE database_name = current_database() "
        "AND schema_name = 'staging' AND view_name = 'stg_contacts'"
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
        # one statement: executemany is an insert (in autocommit, a lake commit) per row
        row = "(" + ", ".join("?" for _ in header) + ")"
        values = ", ".join(row for _ in data)
        con.execute(f"INSERT INTO {relation} VALUES {values}", [cell for cells in data for cell in cells])  # noqa: S608


# what a model or filter segment that cannot be made raises (it is left out; dbt build says why)
_UNMAKEABLE = (duckdb.Error, OSError, KeyError, IndexError, ConfigError, TypeError)


def create_missing_views(
    con: duckdb.DuckDBPyConnection, *, project_dir: Path | str | None = None, home: Path | str | None = None
) -> list[str]:
    """Create the staging and segment views (and seeds) that do not exist yet, from the compiled dbt manifest,
    then the home's filter segments; returns what failed. Outside a transaction: all in one (one lake commit
    instead of one per statement); if anything fails there, again one by one in autocommit, so a broken model
    fails alone.

    Only missing relations are made: `dbt build` owns them afterwards (and replaces them with its own)."""
    con.execute("BEGIN TRANSACTION")
    try:
        _make_missing_views(con, project_dir, home, one_by_one=False)
        con.execute("COMMIT")
        return []
    except _UNMAKEABLE:
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT has already ended the transaction
            con.execute("ROLLBACK")
    return _make_missing_views(con, project_dir, home, one_by_one=True)


def _make_missing_views(
    con: duckdb.DuckDBPyConnection, project_dir: Path | str | None, home: Path | str | None, *, one_by_one: bool
) -> list[str]:
    """The work of `create_missing_views`: a failure is raised, or with `one_by_one` recorded and skipped."""
    project_dir = Path(project_dir or dbt_project_dir())
    manifest = load_manifest(project_dir, home)
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
    for node_id in dependency_order(nodes):
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
        except _UNMAKEABLE:
            if not one_by_one:
                raise
            broken.add(node_id)
            failed.append(name)
    registry = load_custom_fields()
    for segment in filter_definitions(home):
        if ("segments", segment["name"]) in existing:
            continue
        try:
            conditions = stored_conditions(segment, registry)
            con.execute(
                f'CREATE VIEW IF NOT EXISTS segments."{segment["name"]}" AS {view_sql(segment["name"], conditions)}'
            )
        except _UNMAKEABLE:
            if not one_by_one:
                raise
            failed.append(str(segment.get("name")))
    return failed


def views_made(warehouse: Any) -> bool:
    """Make the missing staging and segment views (`create_missing_views`) if the warehouse has none yet; True
    once they exist."""
    home = warehouse.paths.home
    with warehouse.connect() as con:
        if views_missing(con):
            create_missing_views(con, home=home)
        return not views_missing(con)


def ensure_segment_views(warehouse: Any, *, project_dir: Path | str | None = None) -> list[str]:
    """`create_missing_views` on its own connection (after the caller's transaction: a failed view must not
    abort an import). Returns the models that could not be made (dbt build will say why)."""
    with warehouse.connect() as con:
        return create_missing_views(con, project_dir=project_dir, home=warehouse.paths.home)


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
    if name in project_model_names(dbt_dir):
        raise ConfigError(f"segment name {name!r} is already used by a dbt model or seed; pick another name")
    if model_path.exists() and not replace:
        raise ConfigError(f"segment {name!r} already exists; delete it first (callaro segment delete {name})")
    files = model_files(name, where, conditions, dbt_dir)
    _replace_rows(con, name, conditions)
    written: list[Path] = []
    try:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        for path, text in zip(
            filter_files(home, name)[::-1], (files.sidecar, files.properties, files.sql), strict=True
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
    files = filter_files(home, name)
    known = (
        files[0].exists() or con.execute("SELECT count(*) FROM segment_filters WHERE segment = ?", [name]).fetchone()[0]
    )
    if not known:
        if name in project_model_names(dbt_project_dir()):
            raise ConfigError(f"segment {name!r} is a SQL model of the dbt project: remove its file there instead")
        raise ConfigError(f"no filter segment named {name!r} (see callaro segment list)")
    _replace_rows(con, name, None)
    for path in files:  # the .sql first: from then on dbt no longer sees a model
        path.unlink(missing_ok=True)

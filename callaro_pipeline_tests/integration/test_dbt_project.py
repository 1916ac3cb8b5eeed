"""The dbt project for real: one `dbt compile` + one `dbt build` (through the Dagster asset) on a temp warehouse.

Filter segments are written under the temp CALLARO_HOME (never into the project, which is still copied so a
build's artifacts stay out of the repository); the repo's own manifest is made by importing
callaro_pipeline.defs.segments.assets (ensure_manifest: `dbt compile` if stale).
"""

import importlib.metadata
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import dagster as dg
import pytest
from packaging import version

from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.filter_parser import parse_where
from callaro_pipeline.core.project_paths import PROJECT_ROOT
from callaro_pipeline.core.segments import segment_contacts_sql
from callaro_pipeline.defs.partitions import WAREHOUSE_POOL
from callaro_pipeline.defs.segments.assets import (
    CATALOG_ENV,
    CONTACTS_KEY,
    SEGMENTS_GROUP,
    build_segment_assets,
    dbt_env,
    dbt_resource,
    ensure_manifest,
    make_project,
    manifest_is_stale,
    segment_models,
    segments_project,
)
from callaro_pipeline.defs.segments.builds import build_models
from callaro_pipeline.storage.contact_edits import matching_contact_ids
from callaro_pipeline.storage.lake import LakeLocation
from callaro_pipeline.storage.segments import create_filter_segment, preview_segment_size
from callaro_pipeline.storage.warehouse import Warehouse
from callaro_pipeline_tests.conftest import open_lake

REGISTRY = {"plan_tier": CustomField("plan_tier", "string", "sales-ops", "Plan the account is on")}
HAND_WRITTEN = {"seg_eastern_time", "seg_lead_source_webinar", "seg_plan_tier_enterprise", "seg_fresh_30d"}
FILTERS = {
    "warm_west": "lead_source = webinar and state in (CA, TX)",
    "enterprise_stale": "custom.plan_tier = enterprise and updated_at <= -30d",
    "not_california": "state not in (CA) and lead_source != referral",
    "injection_value": "company = 'x''); DROP TABLE contacts; --' and lead_source != '{{ run_query(\"drop table main.contacts\") }}'",
}
EXPECTED = {
    "seg_eastern_time": {"c1", "c3"},
    "seg_lead_source_webinar": {"c1", "c3"},
    "seg_plan_tier_enterprise": {"c1", "c4"},
    "seg_fresh_30d": {"c1", "c3"},
    "warm_west": {"c3"},
    "enterprise_stale": {"c4"},
    "not_california": {"c1", "c4"},
    "injection_value": set(),
}


def _load(wh: Warehouse) -> None:
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    contacts = [
        ("c1", "+12125550101", "NY", "America/New_York", "Webinar", '{"plan_tier": "Enterprise"}', now),
        (
            "c2",
            "+14155550102",
            "CA",
            "America/Los_Angeles",
            "referral",
            '{"plan_tier": "starter"}',
            now - timedelta(days=400),
        ),
        ("c3", "+13135550103", "CA", "America/Detroit", " webinar ", "{}", now - timedelta(days=10)),
        ("c4", "+13125550104", "TX", "America/Chicago", None, '{"plan_tier": "enterprise"}', now - timedelta(days=40)),
    ]
    with wh.connect() as con:
        for row in contacts:
            con.execute(
                "INSERT INTO contacts (contact_id, phone_e164, state, timezone, lead_source, custom_fields, created_at, "
                "updated_at, phone_type, timezone_source) VALUES (?, ?, ?, ?, ?, CAST(? AS JSON), ?, ?, 'mobile', 'phone')",
                [*row, row[-1]],
            )
        for contact_id, upload in [("c1", "u1"), ("c2", "u1"), ("c1", "u2")]:
            con.execute(
                "INSERT INTO campaign_contacts (campaign, contact_id, upload_id, added_at) VALUES ('spring', ?, ?, ?)",
                [contact_id, upload, now],
            )
        for name, where in FILTERS.items():
            create_filter_segment(con, name, where, home=wh.paths.home, registry=REGISTRY)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("segments_dbt")
    project_dir = root / "dbt_contacts"
    shutil.copytree(
        PROJECT_ROOT / "dbt_contacts", project_dir, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CALLARO_HOME", str(root / "home"))
        mp.setenv("CALLARO_CONFIG", str(root / "config"))
        wh = Warehouse(home=str(root / "home"))
        _load(wh)
        project = make_project(project_dir, home=wh.paths.home)
        assert project.target_path == wh.paths.home / "dbt" / "target"  # the home's models, the home's manifest
        ensure_manifest(project, home=wh.paths.home)  # dbt compile
        assets = build_segment_assets(project, name="segment_models_under_test")
        result = dg.materialize(  # dbt build, under the warehouse lock, as in a run
            [assets], resources={"dbt": dbt_resource(project), "warehouse": wh}, raise_on_error=False
        )
        yield SimpleNamespace(warehouse=wh, project=project, assets=assets, result=result)


def test_build_succeeds_and_tests_are_checks(built):
    assert built.result.success
    materialized = {event.asset_key.path[-1] for event in built.result.get_asset_materialization_events()}
    assert HAND_WRITTEN | set(FILTERS) <= materialized
    evaluations = built.result.get_asset_check_evaluations()
    assert len(evaluations) >= 20
    failed = [e.check_name for e in evaluations if not e.passed]
    assert failed == []
    names = {e.check_name for e in evaluations}
    assert "assert_seg_fresh_30d_is_fresh" in names  # the singular test
    assert "unique_warm_west_contact_id" in names  # generated segments are tested too


def test_segment_views_return_expected_contacts(built):
    con = open_lake(built.warehouse.paths.home)
    try:
        for name, expected in EXPECTED.items():
            got = {r[0] for r in con.execute(segment_contacts_sql(name)).fetchall()}
            assert got == expected, name
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}
        assert {"segments", "staging"} <= schemas and "main_segments" not in schemas
        assert con.execute("SELECT count(*) FROM staging.stg_campaign_contacts").fetchone()[0] == 2
    finally:
        con.close()


def test_preview_matches_built_view(built):
    with built.warehouse.connect() as con:
        for name, where in FILTERS.items():
            assert preview_segment_size(con, parse_where(where, REGISTRY)) == len(EXPECTED[name]), name


def test_contacts_commands_select_what_the_built_view_holds(built):
    """One filter language: `contacts update|remove --where` select exactly the dbt-built segment's members."""
    with built.warehouse.connect() as con:
        for name, where in FILTERS.items():
            assert set(matching_contact_ids(con, parse_where(where, REGISTRY))) == EXPECTED[name], name


def test_filter_models_are_read_from_the_home(built):
    nodes = json.loads(built.project.manifest_path.read_text())["nodes"]
    warm = nodes["model.callaro_contacts.warm_west"]
    models = built.warehouse.paths.home / "dbt" / "models"
    assert (
        built.project.project_dir / warm["original_file_path"]
    ).resolve() == models / "segments/filters/warm_west.sql"
    # dbt wrote its compiled files inside its target folder, never over (or next to) the model files
    assert {p.suffix for p in models.rglob("*") if p.is_file()} == {".sql", ".yml", ".json"}
    assert all(p.is_file() for p in models.rglob("*.yml"))
    assert (built.project.target_path / "compiled").is_dir()
    runs = [p for p in built.project.target_path.iterdir() if p.name.startswith("segment_models_under_test")]
    assert runs  # the Dagster run wrote its artifacts under the home's target too
    assert built.warehouse.paths.home in built.project.target_path.parents
    assert warm["schema"] == "segments"
    assert dg.AssetKey(["segments", "warm_west"]) in built.assets.keys
    assert not list((PROJECT_ROOT / "dbt_contacts" / "models" / "segments" / "filters").glob("warm_west.*"))


def test_injection_left_the_warehouse_intact(built):
    con = open_lake(built.warehouse.paths.home)
    try:
        assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 4
        stored = con.execute(
            "SELECT value_json FROM segment_filters WHERE segment = 'injection_value' ORDER BY position"
        ).fetchall()
        assert json.loads(stored[0][0]) == "x'); DROP TABLE contacts; --"
    finally:
        con.close()


def test_an_analyst_attaching_the_lake_reads_segments(built):
    """Views name schema.table only, so they work wherever the lake is attached (the ATTACH line of the README)."""
    con = open_lake(built.warehouse.paths.home)
    try:
        assert {r[0] for r in con.execute(segment_contacts_sql("seg_eastern_time")).fetchall()} == {"c1", "c3"}
        assert {r[0] for r in con.execute(segment_contacts_sql("warm_west")).fetchall()} == {"c3"}
    finally:
        con.close()


def test_cli_build_of_a_new_segment(built):
    """`callaro segment create` path: new model -> manifest stale -> build_models (dbt build --select)."""
    home = built.warehouse.paths.home
    assert not manifest_is_stale(built.project, home=home)
    with built.warehouse.connect() as con:
        create_filter_segment(con, "late_addition", "state = NY", home=home, registry=REGISTRY)
    assert manifest_is_stale(built.project, home=home)
    build_models(built.warehouse, ["late_addition"], dbt_dir=built.project.project_dir)
    assert "model.callaro_contacts.late_addition" in json.loads(built.project.manifest_path.read_text())["nodes"]
    con = open_lake(built.warehouse.paths.home)
    try:
        assert {r[0] for r in con.execute(segment_contacts_sql("late_addition")).fetchall()} == {"c1"}
    finally:
        con.close()


# --- the repo's project and the Dagster wiring (no dbt runs: the import made the manifest) ------------------


def test_repo_manifest_exists():
    manifest = ensure_manifest()
    assert manifest == segments_project.manifest_path and manifest.exists()
    nodes = json.loads(manifest.read_text())["nodes"]
    assert {f"model.callaro_contacts.{name}" for name in HAND_WRITTEN} <= set(nodes)


def test_translator_keys_groups_and_pool():
    keys = {key.to_user_string() for key in segment_models.keys}
    assert {f"segments/{name}" for name in HAND_WRITTEN} <= keys
    assert {"staging/stg_contacts", "staging/stg_campaign_contacts"} <= keys
    specs = segment_models.specs_by_key
    assert {spec.group_name for spec in specs.values()} == {SEGMENTS_GROUP}
    stg = specs[dg.AssetKey(["staging", "stg_contacts"])]
    assert {dep.asset_key for dep in stg.deps} == {CONTACTS_KEY}
    eastern = specs[dg.AssetKey(["segments", "seg_eastern_time"])]
    assert dg.AssetKey(["staging", "stg_contacts"]) in {dep.asset_key for dep in eastern.deps}
    assert segment_models.op.pool == WAREHOUSE_POOL
    assert any(check.name == "assert_seg_fresh_30d_is_fresh" for check in segment_models.check_keys)


def test_definitions_load():
    defs = dg.Definitions(assets=[segment_models], resources={"dbt": dbt_resource(), "warehouse": Warehouse()})
    dg.Definitions.validate_loadable(defs)


def test_the_dbt_resource_knows_the_installed_dbt_version_without_running_dbt(monkeypatch):
    """dagster-dbt asks `dbt --version` once per resource instance (every run); ours reads the installed
    dbt-core's version, and still overrides dagster-dbt's own lookup."""
    import dagster_dbt.core.resource as dagster_dbt_resource

    assert "_cli_version" in vars(dagster_dbt_resource.DbtCliResource)

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"a subprocess was started: {args}")

    monkeypatch.setattr(dagster_dbt_resource, "check_output", no_subprocess)
    assert dbt_resource()._cli_version == version.parse(importlib.metadata.version("dbt-core"))
    elsewhere = dbt_resource().model_copy(update={"dbt_executable": "/opt/other/dbt"})
    with pytest.raises(AssertionError, match="a subprocess was started"):
        _ = elsewhere._cli_version  # any other executable is asked


def test_dbt_env_restores(monkeypatch, tmp_path):
    monkeypatch.delenv(CATALOG_ENV, raising=False)
    lake = LakeLocation.for_home(tmp_path)
    with dbt_env(lake):
        assert os.environ[CATALOG_ENV] == lake.catalog == f"sqlite:{tmp_path / 'lake' / 'catalog.sqlite'}"
    assert CATALOG_ENV not in os.environ


@pytest.mark.parametrize("kind", ["sqlite", "in-memory"])
def test_dbts_attach_of_the_lake_waits_for_the_catalog_as_the_pipelines_does(kind, tmp_path):
    """dbt renders profiles.yml into its own ATTACH: a SQLite catalog gets the pipeline's busy timeout (without it
    dbt's commits failed while analysts read), an in-memory one (parse, compile) none, which it would refuse."""
    import duckdb
    import yaml
    from dbt.adapters.duckdb.credentials import Attachment
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    from callaro_pipeline.storage.lake import CATALOG_BUSY_TIMEOUT_MS, load_extensions

    lake = LakeLocation.for_home(tmp_path) if kind == "sqlite" else None
    raw = yaml.safe_load((PROJECT_ROOT / "dbt_contacts" / "profiles.yml").read_text())
    with dbt_env(lake, home=tmp_path):
        set_invocation_context(dict(os.environ))  # what dbt's env_var() reads
        profile = ProfileRenderer({}).render_data(raw)
    attach = Attachment(**profile["callaro_contacts"]["outputs"]["lake"]["attach"][0]).to_sql()
    assert (f"META_BUSY_TIMEOUT {CATALOG_BUSY_TIMEOUT_MS}" in attach) == (kind == "sqlite")
    (tmp_path / "lake").mkdir()
    con = duckdb.connect()
    load_extensions(con)
    con.execute(attach)  # DuckLake accepts it
    con.execute("CREATE TABLE lake.probe AS SELECT 1 AS n")
    assert con.execute("SELECT n FROM lake.probe").fetchall() == [(1,)]
    con.close()

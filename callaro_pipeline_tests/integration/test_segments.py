"""Segments without SQL: the --where language, allowlists, injection, previews, files under CALLARO_HOME, the
views made without dbt at a fresh home, and `callaro segment create|list|delete` (no dbt runs here)."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callaro_pipeline.cli.app import main
from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.filter_parser import Condition, parse_where
from callaro_pipeline.core.project_paths import PROJECT_ROOT
from callaro_pipeline.core.segments import filters_dir, list_segments, model_sql, segment_contacts_sql
from callaro_pipeline.storage.segments import (
    create_filter_segment,
    create_missing_views,
    delete_filter_segment,
    preview_segment_size,
    views_missing,
)
from callaro_pipeline.storage.warehouse import Warehouse
from callaro_pipeline_tests.conftest import open_lake, write_csv

REGISTRY = {
    "plan_tier": CustomField("plan_tier", "string", "sales-ops", "Plan the account is on"),
    "seats": CustomField("seats", "integer", "sales-ops", "Licensed seats"),
    "is_partner": CustomField("is_partner", "boolean", "sales-ops", "Partner account"),
}
INJECTIONS = [
    'x"; DROP TABLE contacts; --',
    "x'); DROP TABLE contacts; --",
    "{{ run_query('drop table main.contacts') }}",
]


# --- parse_where -------------------------------------------------------------------------------------------


def test_parse_where_conditions():
    conds = parse_where(
        "lead_source = webinar and state in (CA, 'New York') and custom.plan_tier = enterprise", REGISTRY
    )
    assert [(c.field, c.operator, c.value) for c in conds] == [
        ("lead_source", "=", "webinar"),
        ("state", "in", ["CA", "New York"]),
        ("custom.plan_tier", "=", "enterprise"),
    ]
    assert conds[2].type == "text"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("company = Acme Widgets Inc", ("company", "=", "Acme Widgets Inc")),
        ('company = "Smith and Sons"', ("company", "=", "Smith and Sons")),
        ("company = 'O''Brien'", ("company", "=", "O'Brien")),
        ("state != CA", ("state", "!=", "CA")),
        ("state <> CA", ("state", "!=", "CA")),
        ("state not in (CA,NY)", ("state", "not in", ["CA", "NY"])),
        ("email_domain contains example", ("email_domain", "contains", "example")),
        ("postal_code starts_with 941", ("postal_code", "starts_with", "941")),
        ("company is_null", ("company", "is_null", None)),
        ("company is not null", ("company", "not_null", None)),
        ("company not_null", ("company", "not_null", None)),
        ("updated_at >= -30d", ("updated_at", ">=", "-30 days")),
        ("created_at <= 2026-01-31", ("created_at", "<=", "2026-01-31 00:00:00")),
        ("custom.seats >= 10", ("custom.seats", ">=", "10")),
        ("custom.is_partner = yes", ("custom.is_partner", "=", "true")),
        ("LEAD_SOURCE = Webinar", ("lead_source", "=", "Webinar")),
    ],
)
def test_parse_where_forms(text, expected):
    [cond] = parse_where(text, REGISTRY)
    assert (cond.field, cond.operator, cond.value) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("colour = red", "unknown field 'colour'"),
        ("custom.favourite_color = red", "unknown custom field"),
        ("state like CA", "unknown operator 'like'"),
        ("state > CA", "use >="),
        ("state = CA or state = NY", "only 'and'"),
        ("state in CA", "parentheses"),
        ("state in (CA NY", "ended"),
        ("state = 'CA", "unterminated quote"),
        ("state =", "expected a value"),
        ("state = CA state = NY", "expected 'and'"),
        ("custom.seats = many", "is a number"),
        ("custom.seats contains 1", "does not apply"),
        ("updated_at >= yesterday", "relative time"),
        ("updated_at = 2026-01-01", "does not apply"),
        ("custom.is_partner = maybe", "true/false"),
    ],
)
def test_parse_where_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_where(text, REGISTRY)


@pytest.mark.parametrize("attack", INJECTIONS)
def test_injection_as_field_is_refused(attack):
    with pytest.raises(ConfigError):
        parse_where(f"{attack} = 1", REGISTRY)


def test_injection_as_value_stays_data():
    conds = parse_where("company = 'x''); DROP TABLE contacts; --' and lead_source = \"x\"\"; drop\"", REGISTRY)
    assert [c.value for c in conds] == ["x'); DROP TABLE contacts; --", 'x"; drop']
    sql = model_sql("safe_name", conds)
    assert "drop" not in sql.lower() and "x'" not in sql


def test_sql_generation_rechecks_allowlists():
    with pytest.raises(ConfigError):
        model_sql("seg", [Condition(field="c.email); drop table contacts; --", operator="=", value="x")])
    with pytest.raises(ConfigError):
        model_sql("seg", [Condition(field="state", operator="= 1 or 1 =", value="x")])
    with pytest.raises(ConfigError):
        model_sql("bad-name", [Condition(field="state", operator="=", value="x")])


@pytest.mark.parametrize("name", ["Seg", "1seg", "seg-x", "seg;drop", 'a"b', "", "x" * 64])
def test_segment_names_are_identifiers(name):
    with pytest.raises(ConfigError):
        segment_contacts_sql(name)


def test_segment_contacts_sql():
    assert segment_contacts_sql("seg_eastern_time") == 'select contact_id from segments."seg_eastern_time"'


# --- against a real warehouse (no dbt) --------------------------------------------------------------------


@pytest.fixture
def warehouse(tmp_path):
    wh = Warehouse(home=str(tmp_path / "home"))
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    rows = [
        (
            "c1",
            "+12125550101",
            "NY",
            "America/New_York",
            "Webinar",
            None,
            '{"plan_tier": "Enterprise", "seats": 50}',
            now,
        ),
        (
            "c2",
            "+14155550102",
            "CA",
            "America/Los_Angeles",
            "referral",
            "Acme",
            '{"plan_tier": "starter"}',
            now - timedelta(days=400),
        ),
        ("c3", "+13135550103", "CA", "America/Detroit", " webinar ", None, "{}", now - timedelta(days=10)),
        (
            "c4",
            "+13125550104",
            "TX",
            "America/Chicago",
            None,
            "Beta",
            '{"plan_tier": "enterprise", "is_partner": true}',
            now - timedelta(days=40),
        ),
    ]
    with wh.connect() as con:
        for r in rows:
            con.execute(
                "INSERT INTO contacts (contact_id, phone_e164, state, timezone, lead_source, company, custom_fields, "
                "created_at, updated_at, email) VALUES (?, ?, ?, ?, ?, ?, CAST(? AS JSON), ?, ?, ?)",
                [*r, r[7], f"{r[0]}@Example.COM"],
            )
    return wh


@pytest.mark.parametrize(
    ("where", "count"),
    [
        ("lead_source = webinar", 2),  # case and spaces ignored
        ("lead_source != webinar", 2),  # null lead source counts as "not webinar"
        ("state in (ca, tx)", 3),
        ("state not in (CA)", 2),
        ("custom.plan_tier = enterprise", 2),
        ("custom.seats >= 10", 1),
        ("custom.is_partner = true", 1),
        ("updated_at >= -30d", 2),
        ("updated_at <= -30d and custom.plan_tier = enterprise", 1),
        ("company is_null", 2),
        ("email_domain = example.com", 4),
        ("timezone starts_with america/new", 1),
    ],
)
def test_preview_counts(warehouse, where, count):
    with warehouse.connect() as con:
        assert preview_segment_size(con, parse_where(where, REGISTRY)) == count


def test_preview_injection_is_inert(warehouse):
    with warehouse.connect() as con:
        for attack in INJECTIONS:
            assert preview_segment_size(con, [Condition("company", "=", attack)]) == 0
            assert preview_segment_size(con, [Condition("state", "in", [attack, "CA"])]) == 2
        assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 4


@pytest.fixture(scope="module")
def compiled_manifest():
    """The repo's compiled manifest (importing the Dagster side compiles it if stale: `dbt compile`, once)."""
    from callaro_pipeline.defs.segments.assets import ensure_manifest, make_project

    return ensure_manifest(make_project(home=PROJECT_ROOT / "no-such-home"))


def _project_files() -> set[Path]:
    root = PROJECT_ROOT / "dbt_contacts"
    return {p for p in root.rglob("*") if p.is_file() and not {"target", "logs"} & set(p.relative_to(root).parts)}


def test_create_filter_segment_writes_rows_and_model_under_the_home(warehouse):
    home = warehouse.paths.home
    project_before = _project_files()
    where = "lead_source = webinar and state in (CA, NY) and custom.plan_tier = enterprise"
    with warehouse.connect() as con:
        path = create_filter_segment(con, "warm_leads", where, home=home, registry=REGISTRY)
        rows = con.execute(
            "SELECT position, field, operator, value_json FROM segment_filters WHERE segment = ? ORDER BY position",
            ["warm_leads"],
        ).fetchall()
    assert [(p, f, o, json.loads(v)) for p, f, o, v in rows] == [
        (1, "lead_source", "=", "webinar"),
        (2, "state", "in", ["CA", "NY"]),
        (3, "custom.plan_tier", "=", "enterprise"),
    ]
    assert path == home / "dbt" / "models" / "segments" / "filters" / "warm_leads.sql"
    assert _project_files() == project_before  # nothing in the tracked project
    sql = path.read_text()
    assert "{{ source('callaro', 'segment_filters') }}" in sql and "{{ ref('stg_contacts') }}" in sql
    assert "webinar" not in sql and "enterprise" not in sql and "CA" not in sql  # values are never in the SQL
    listed = {s["name"]: s for s in list_segments(home=home)}
    assert listed["warm_leads"]["kind"] == "filter"
    assert listed["warm_leads"]["where"] == where
    assert listed["seg_eastern_time"]["kind"] == "sql"
    assert listed["seg_eastern_time"]["description"]
    assert {"seg_eastern_time", "seg_lead_source_webinar", "seg_plan_tier_enterprise", "seg_fresh_30d"} <= set(listed)

    with warehouse.connect() as con:
        with pytest.raises(ConfigError, match="already exists"):
            create_filter_segment(con, "warm_leads", "state = CA", home=home, registry=REGISTRY)
        create_filter_segment(con, "warm_leads", "state = CA", home=home, registry=REGISTRY, replace=True)
        assert con.execute("SELECT count(*) FROM segment_filters WHERE segment = 'warm_leads'").fetchone()[0] == 1
        with pytest.raises(ConfigError, match="already used"):
            create_filter_segment(con, "stg_contacts", "state = CA", home=home, registry=REGISTRY)
        delete_filter_segment(con, "warm_leads", home=home)
        assert con.execute("SELECT count(*) FROM segment_filters").fetchone()[0] == 0
        with pytest.raises(ConfigError, match="no filter segment named 'warm_leads'"):
            delete_filter_segment(con, "warm_leads", home=home)
        with pytest.raises(ConfigError, match="SQL model of the dbt project"):
            delete_filter_segment(con, "seg_eastern_time", home=home)
    assert "warm_leads" not in {s["name"] for s in list_segments(home=home)}
    assert not list(filters_dir(home).glob("warm_leads.*"))


def test_installations_do_not_see_each_others_segments(tmp_path):
    """Same name in two fresh homes: no "already exists", each lists only its own."""
    homes = [tmp_path / "a", tmp_path / "b"]
    for home, where in zip(homes, ["state = CA", "state = NY"], strict=True):
        with Warehouse(home=str(home)).connect() as con:
            create_filter_segment(con, "regional", where, home=home, registry=REGISTRY)
    for home, where in zip(homes, ["state = CA", "state = NY"], strict=True):
        filters = [s for s in list_segments(home=home) if s["kind"] == "filter"]
        assert [(s["name"], s["where"]) for s in filters] == [("regional", where)]
    assert not list((PROJECT_ROOT / "dbt_contacts" / "models" / "segments" / "filters").glob("regional.*"))


def test_create_inside_the_callers_transaction(warehouse):
    """The CLI creates the segment inside warehouse.transaction(): it must join it, not abort it."""
    home = warehouse.paths.home
    with warehouse.transaction() as con:
        create_filter_segment(con, "in_tx", "state = CA", home=home, registry=REGISTRY)
        assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 4
    with warehouse.connect() as con:
        assert con.execute("SELECT count(*) FROM segment_filters WHERE segment = 'in_tx'").fetchone()[0] == 1
    with pytest.raises(RuntimeError), warehouse.transaction() as con:
        create_filter_segment(con, "in_tx", "state = NY", home=home, registry=REGISTRY, replace=True)
        raise RuntimeError("caller fails after the segment was written")
    with warehouse.connect() as con:  # the caller's rollback took the rows back too
        assert (
            json.loads(con.execute("SELECT value_json FROM segment_filters WHERE segment = 'in_tx'").fetchone()[0])
            == "CA"
        )


def test_bad_segment_writes_nothing(warehouse):
    home = warehouse.paths.home
    with warehouse.connect() as con:
        for name, where in [("ok_name", "colour = red"), ("Bad Name", "state = CA"), ("ok_name", INJECTIONS[0])]:
            with pytest.raises(ConfigError):
                create_filter_segment(con, name, where, home=home, registry=REGISTRY)
        assert con.execute("SELECT count(*) FROM segment_filters").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 4
    assert not list(filters_dir(home).glob("*.sql"))


def test_legacy_filters_dir_is_ignored_by_git_and_dbt():
    ignore = (PROJECT_ROOT / "dbt_contacts" / "models" / "segments" / "filters" / ".gitignore").read_text()
    assert "*" in ignore.split()
    assert "models/segments/filters/" in (PROJECT_ROOT / "dbt_contacts" / ".dbtignore").read_text().split()
    project = (PROJECT_ROOT / "dbt_contacts" / "dbt_project.yml").read_text()
    assert "env_var('CALLARO_SEGMENT_MODELS'" in project


def test_model_file_has_no_user_text(warehouse):
    where = "company = '{{ run_query(\"drop table main.contacts\") }}' and lead_source != '{% raw %}x'"
    with warehouse.connect() as con:
        path = create_filter_segment(con, "jinja_attempt", where, home=warehouse.paths.home, registry=REGISTRY)
    for generated in (path, path.with_suffix(".yml")):
        text = generated.read_text()
        assert "run_query" not in text and "raw" not in text
    # the original text is only in the sidecar dbt does not read
    assert json.loads(path.with_suffix(".json").read_text())["where"] == where


def test_segment_names_checked_on_create(warehouse):
    home = warehouse.paths.home
    with warehouse.connect() as con:
        with pytest.raises(ConfigError, match="segment name"):
            create_filter_segment(con, "../evil", "state = CA", home=home, registry=REGISTRY)
    assert not (filters_dir(home).parent / "evil.sql").exists()
    assert not Path(home / "dbt" / "models" / "evil.sql").exists()


# --- the views without dbt: a fresh home can query segments from its first write on ---------------------


def test_views_made_from_the_compiled_manifest(warehouse, compiled_manifest):
    home = warehouse.paths.home
    with warehouse.connect() as con:
        assert views_missing(con)
        create_filter_segment(con, "webinar_leads", "lead_source = webinar", home=home, registry=REGISTRY)
        assert create_missing_views(con, home=home) == []
        assert not views_missing(con)
        members = {
            name: {r[0] for r in con.execute(segment_contacts_sql(name)).fetchall()}
            for name in ("seg_eastern_time", "seg_lead_source_webinar", "seg_plan_tier_enterprise", "webinar_leads")
        }
        assert members == {
            "seg_eastern_time": {"c1", "c3"},
            "seg_lead_source_webinar": {"c1", "c3"},
            "seg_plan_tier_enterprise": {"c1", "c4"},
            "webinar_leads": {"c1", "c3"},
        }
        assert create_missing_views(con, home=home) == []  # idempotent
        # with the views in place, create and delete keep the segment's view in step
        create_filter_segment(con, "texans", "state = tx", home=home, registry=REGISTRY)
        assert {r[0] for r in con.execute(segment_contacts_sql("texans")).fetchall()} == {"c4"}
        delete_filter_segment(con, "texans", home=home)
        views = segment_views(con)
        assert "texans" not in views and "webinar_leads" in views


def segment_views(con) -> set[str]:
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'segments'").fetchall()
    return {name for (name,) in rows}


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_segment_commands_in_a_fresh_home(callaro_env, capsys, compiled_manifest):
    """Before any import: create works (0 contacts) and is queryable, list shows it, delete removes it all."""
    code, out, err = run(capsys, "segment", "create", "webinar-leads", "--where", "lead_source = webinar")
    assert (code, err) == (0, "") and "segment webinar_leads: 0 contacts" in out
    model = filters_dir(callaro_env) / "webinar_leads.sql"
    assert model.exists()
    code, out, _ = run(capsys, "segment", "list")
    assert code == 0 and any(line.split()[:2] == ["webinar_leads", "filter"] for line in out.splitlines())
    assert "seg_eastern_time" in out
    code, _, err = run(capsys, "segment", "create", "webinar_leads", "--where", "state = CA")
    assert code == 2 and err.count("\n") == 1 and "already exists" in err
    con = open_lake(callaro_env)
    try:
        assert con.execute(segment_contacts_sql("webinar_leads")).fetchall() == []
    finally:
        con.close()
    code, out, err = run(capsys, "segment", "delete", "webinar_leads")
    assert (code, err) == (0, "") and "deleted" in out
    assert not list(filters_dir(callaro_env).glob("webinar_leads.*"))
    with Warehouse().connect() as con:
        assert con.execute("SELECT count(*) FROM segment_filters").fetchone()[0] == 0
        views = segment_views(con)
    assert "webinar_leads" not in views and "seg_eastern_time" in views
    code, _, err = run(capsys, "segment", "delete", "webinar_leads")
    assert code == 2 and err.count("\n") == 1 and "no filter segment" in err
    code, _, err = run(capsys, "segment", "create", "bad", "--where", "colour = red")
    assert code == 2 and err.count("\n") == 1
    assert not list(filters_dir(callaro_env).glob("bad.*"))


@pytest.mark.slow
def test_segments_queryable_after_the_first_import(callaro_env, tmp_path, capsys, compiled_manifest):
    upload = write_csv(
        tmp_path / "leads.csv",
        ["Phone Number", "First Name", "Lead Source", "State"],
        [
            ["(415) 555-0134", "Ann", "Webinar", "CA"],
            ["(212) 555-0199", "Bo", "webinar", "NY"],
            ["(646) 201-7789", "Cy", "referral", "NY"],
        ],
    )
    code, _, _ = run(capsys, "import", str(upload), "--campaign", "spring")
    assert code == 0
    con = open_lake(callaro_env)
    try:
        assert len(con.execute(segment_contacts_sql("seg_lead_source_webinar")).fetchall()) == 2
        assert con.execute("SELECT count(*) FROM staging.stg_contacts").fetchone()[0] == 3
    finally:
        con.close()
    # one filter language: the segment and `contacts remove` select the same two people
    code, out, _ = run(capsys, "segment", "create", "webinar", "--where", "lead_source = webinar")
    assert code == 0 and "segment webinar: 2 contacts" in out
    code, out, _ = run(capsys, "contacts", "remove", "--where", "lead_source = webinar")
    assert code == 0 and out.startswith("2 contacts would change")


@pytest.mark.parametrize(
    ("project", "home"),
    [
        ("/work/main/dbt_contacts", "/work/main/data"),
        ("/work/main/dbt_contacts", "/tmp/pytest-of-root/pytest-1/t0/home"),
        ("/home/ann/code/deep/er/callaro/dbt_contacts", "/srv"),
        ("/opt/dbt_contacts", "/a/b/c/d/e/f/home"),
    ],
)
def test_dbt_never_writes_compiled_files_outside_the_target(tmp_path, project, home):
    """dbt writes `<target>/compiled/<project>/<original path>`; a filter model's path climbs out of the project.
    The home's target keeps those files inside the home's dbt/target, never on a model file or elsewhere."""
    import os

    from callaro_pipeline.core.segments import dbt_models_path, dbt_models_path_within, target_dir

    home_path = tmp_path.joinpath(home.lstrip("/"))
    project_path = tmp_path.joinpath(project.lstrip("/"))
    filters_dir(home_path).mkdir(parents=True)
    (filters_dir(home_path) / "seg.sql").write_text("select 1")
    target = target_dir(project_path, home_path)
    assert dbt_models_path_within(target, project_path, home_path)
    relative = dbt_models_path(project_path, home_path)
    assert not os.path.isabs(relative)
    written = os.path.normpath(
        os.path.join(target, "compiled", "callaro_contacts", relative, "segments", "filters", "seg.sql")
    )
    assert Path(written).is_relative_to(home_path / "dbt" / "target")
    assert Path(written) != filters_dir(home_path) / "seg.sql"
    # a project made for the tracked target does not get a far-away home's models
    if relative.count("..") > 2:
        assert not dbt_models_path_within(project_path / "target", project_path, home_path)


def test_a_model_that_cannot_be_made_fails_alone_with_its_dependents(warehouse, tmp_path):
    """All views are made in one transaction; when one fails, the others are still made one by one."""

    def view(name: str, sql: str, parents: tuple[str, ...] = ()) -> tuple[str, dict]:
        node = {
            "resource_type": "model",
            "name": name,
            "schema": "segments",
            "original_file_path": f"models/segments/{name}.sql",
            "config": {"materialized": "view", "enabled": True},
            "compiled_code": sql,
            "depends_on": {"nodes": [f"model.p.{parent}" for parent in parents]},
        }
        return f"model.p.{name}", node

    project = tmp_path / "project"
    (project / "target").mkdir(parents=True)
    nodes = dict(
        [
            view("seg_good", "SELECT contact_id FROM contacts"),
            view("seg_broken", "SELECT no_such_column FROM contacts"),
            view("seg_on_broken", "SELECT * FROM segments.seg_broken", ("seg_broken",)),
        ]
    )
    (project / "target" / "manifest.json").write_text(json.dumps({"nodes": nodes}), encoding="utf-8")
    home = warehouse.paths.home
    with warehouse.connect() as con:
        assert sorted(create_missing_views(con, project_dir=project, home=home)) == ["seg_broken", "seg_on_broken"]
        assert segment_views(con) == {"seg_good"}
        assert con.execute("SELECT count(*) FROM segments.seg_good").fetchone()[0] == 4

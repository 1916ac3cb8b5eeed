"""Segments without SQL: the --where language, allowlists, injection, previews and files (no dbt runs here)."""

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callaro_pipeline.config import PROJECT_ROOT, CustomField
from callaro_pipeline.errors import ConfigError
from callaro_pipeline.segments import (
    Condition,
    create_filter_segment,
    delete_filter_segment,
    list_segments,
    model_sql,
    parse_where,
    preview_segment_size,
    segment_contacts_sql,
)
from callaro_pipeline.warehouse import Warehouse

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


@pytest.fixture
def dbt_copy(tmp_path):
    target = tmp_path / "dbt_contacts"
    shutil.copytree(
        PROJECT_ROOT / "dbt_contacts", target, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
    )
    for generated in (target / "models" / "segments" / "filters").glob("*.*"):
        if generated.suffix in (".sql", ".yml", ".json"):
            generated.unlink()
    return target


def test_create_filter_segment_writes_rows_and_model(warehouse, dbt_copy):
    where = "lead_source = webinar and state in (CA, NY) and custom.plan_tier = enterprise"
    with warehouse.connect() as con:
        path = create_filter_segment(con, "warm_leads", where, dbt_dir=dbt_copy, registry=REGISTRY)
        rows = con.execute(
            "SELECT position, field, operator, value_json FROM segment_filters WHERE segment = ? ORDER BY position",
            ["warm_leads"],
        ).fetchall()
    assert [(p, f, o, json.loads(v)) for p, f, o, v in rows] == [
        (1, "lead_source", "=", "webinar"),
        (2, "state", "in", ["CA", "NY"]),
        (3, "custom.plan_tier", "=", "enterprise"),
    ]
    assert path == dbt_copy / "models" / "segments" / "filters" / "warm_leads.sql"
    sql = path.read_text()
    assert "{{ source('callaro', 'segment_filters') }}" in sql and "{{ ref('stg_contacts') }}" in sql
    assert "webinar" not in sql and "enterprise" not in sql and "CA" not in sql  # values are never in the SQL
    listed = {s["name"]: s for s in list_segments(dbt_copy)}
    assert listed["warm_leads"]["kind"] == "filter"
    assert listed["warm_leads"]["where"] == where
    assert listed["seg_eastern_time"]["kind"] == "sql"
    assert listed["seg_eastern_time"]["description"]
    assert {"seg_eastern_time", "seg_lead_source_webinar", "seg_plan_tier_enterprise", "seg_fresh_30d"} <= set(listed)

    with warehouse.connect() as con:
        with pytest.raises(ConfigError, match="already exists"):
            create_filter_segment(con, "warm_leads", "state = CA", dbt_dir=dbt_copy, registry=REGISTRY)
        create_filter_segment(con, "warm_leads", "state = CA", dbt_dir=dbt_copy, registry=REGISTRY, replace=True)
        assert con.execute("SELECT count(*) FROM segment_filters WHERE segment = 'warm_leads'").fetchone()[0] == 1
        with pytest.raises(ConfigError, match="already used"):
            create_filter_segment(con, "stg_contacts", "state = CA", dbt_dir=dbt_copy, registry=REGISTRY)
        delete_filter_segment(con, "warm_leads", dbt_dir=dbt_copy)
        assert con.execute("SELECT count(*) FROM segment_filters").fetchone()[0] == 0
    assert "warm_leads" not in {s["name"] for s in list_segments(dbt_copy)}


def test_create_inside_the_callers_transaction(warehouse, dbt_copy):
    """The CLI creates the segment inside warehouse.transaction(): it must join it, not abort it."""
    with warehouse.transaction() as con:
        create_filter_segment(con, "in_tx", "state = CA", dbt_dir=dbt_copy, registry=REGISTRY)
        assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 4
    with warehouse.connect() as con:
        assert con.execute("SELECT count(*) FROM segment_filters WHERE segment = 'in_tx'").fetchone()[0] == 1
    with pytest.raises(RuntimeError), warehouse.transaction() as con:
        create_filter_segment(con, "in_tx", "state = NY", dbt_dir=dbt_copy, registry=REGISTRY, replace=True)
        raise RuntimeError("caller fails after the segment was written")
    with warehouse.connect() as con:  # the caller's rollback took the rows back too
        assert (
            json.loads(con.execute("SELECT value_json FROM segment_filters WHERE segment = 'in_tx'").fetchone()[0])
            == "CA"
        )


def test_bad_segment_writes_nothing(warehouse, dbt_copy):
    with warehouse.connect() as con:
        for name, where in [("ok_name", "colour = red"), ("Bad Name", "state = CA"), ("ok_name", INJECTIONS[0])]:
            with pytest.raises(ConfigError):
                create_filter_segment(con, name, where, dbt_dir=dbt_copy, registry=REGISTRY)
        assert con.execute("SELECT count(*) FROM segment_filters").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 4
    assert not list((dbt_copy / "models" / "segments" / "filters").glob("*.sql"))


def test_repo_filters_dir_is_ignored_by_git():
    ignore = (PROJECT_ROOT / "dbt_contacts" / "models" / "segments" / "filters" / ".gitignore").read_text()
    assert "*" in ignore.split()


def test_model_file_has_no_user_text(warehouse, dbt_copy):
    where = "company = '{{ run_query(\"drop table main.contacts\") }}' and lead_source != '{% raw %}x'"
    with warehouse.connect() as con:
        path = create_filter_segment(con, "jinja_attempt", where, dbt_dir=dbt_copy, registry=REGISTRY)
    for generated in (path, path.with_suffix(".yml")):
        text = generated.read_text()
        assert "run_query" not in text and "raw" not in text
    # the original text is only in the sidecar dbt does not read
    assert json.loads(path.with_suffix(".json").read_text())["where"] == where


def test_segment_names_checked_on_create(warehouse, dbt_copy):
    with warehouse.connect() as con:
        with pytest.raises(ConfigError, match="segment name"):
            create_filter_segment(con, "../evil", "state = CA", dbt_dir=dbt_copy, registry=REGISTRY)
    assert not (dbt_copy / "models" / "segments" / "evil.sql").exists()
    assert not Path(dbt_copy / "models" / "evil.sql").exists()

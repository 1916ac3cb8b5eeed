"""One filter language with one meaning: a filter segment (`segment create --where`) and `contacts update|remove
--where` select the same contacts for the same text. Text comparisons ignore case and surrounding spaces."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callaro_pipeline.cli.manage import selection_by_ids
from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.filter_parser import parse_where
from callaro_pipeline.core.filters import bound_select_sql
from callaro_pipeline.core.project_paths import PROJECT_ROOT
from callaro_pipeline.core.segments import segment_contacts_sql
from callaro_pipeline.storage.contact_book import remove_contacts, update_contacts
from callaro_pipeline.storage.contact_edits import matching_contact_ids
from callaro_pipeline.storage.segments import create_filter_segment, create_missing_views
from callaro_pipeline.storage.warehouse import Warehouse

REGISTRY = {
    "plan_tier": CustomField("plan_tier", "string", "sales-ops", "Plan the account is on"),
    "seats": CustomField("seats", "integer", "sales-ops", "Licensed seats"),
    "is_partner": CustomField("is_partner", "boolean", "sales-ops", "Partner account"),
}
NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def test_the_filter_module_is_pure():
    """Text in, SQL and parameters out: no Dagster, no database driver, no dataframe library."""
    code = (
        "import sys, callaro_pipeline.core.filters as f\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'dagster_dbt', 'duckdb', 'polars'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert out.stdout.strip() == "[]"
    sql, params = bound_select_sql(parse_where("lead_source = webinar and state in (Quebec, Yukon)", REGISTRY))
    assert "webinar" not in sql and "Quebec" not in sql  # values are parameters
    assert params == [1, "lead_source", "=", '"webinar"', 2, "state", "in", '["Quebec", "Yukon"]']


def test_segments_and_contacts_commands_share_the_parser():
    from callaro_pipeline.cli import manage, segments

    assert segments.parse_where is parse_where
    assert [(c.field, c.operator, c.value) for c in manage.where_conditions("email = Ann@Example.com")] == [
        ("email", "=", "Ann@Example.com")
    ]
    # the contact book's own columns are fields of segments too: one field list
    assert [c.field for c in parse_where("first_name = ann and contact_id = x", REGISTRY)] == [
        "first_name",
        "contact_id",
    ]


# --- against a real warehouse with the segment views (made from the compiled dbt manifest) -------------------


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    from callaro_pipeline.defs.segments.assets import ensure_manifest, make_project

    home = tmp_path_factory.mktemp("filter_language") / "home"
    ensure_manifest(make_project(home=home), home=home)
    warehouse = Warehouse(home=str(home))
    with warehouse.connect() as con:
        assert create_missing_views(con, home=home) == []
        yield con, home


def _load(con, rows: list[dict]) -> None:
    """The book holds exactly `rows`, in one lake transaction (a commit per row costs a catalog write each)."""
    con.execute("BEGIN")
    con.execute("DELETE FROM campaign_contacts")
    con.execute("DELETE FROM contacts")
    for i, row in enumerate(rows):
        con.execute(
            "INSERT INTO contacts (contact_id, phone_e164, lead_source, state, company, first_name, email, "
            "consent_date, custom_fields, timezone_source, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS JSON), 'phone', ?, ?)",
            [
                f"c{i:03d}",
                f"+1415555{i:04d}",
                row.get("lead_source"),
                row.get("state"),
                row.get("company"),
                row.get("first_name"),
                row.get("email"),
                row.get("consent_date"),
                json.dumps(row.get("custom") or {}),
                NOW,
                NOW - timedelta(days=row.get("age_days", 0)),
            ],
        )
        con.execute(
            "INSERT INTO campaign_contacts (campaign, contact_id, upload_id, added_at) VALUES ('spring', ?, 'u1', ?)",
            [f"c{i:03d}", NOW],
        )
    con.execute("COMMIT")


def _segment_members(con, home: Path, name: str, where: str) -> set[str]:
    create_filter_segment(con, name, where, home=home, registry=REGISTRY, replace=True)
    return {r[0] for r in con.execute(segment_contacts_sql(name)).fetchall()}


def _command_targets(con, where: str) -> set[str]:
    """What `contacts remove --where` would remove (its dry run), and the ids it hands the contact book."""
    ids = matching_contact_ids(con, parse_where(where, REGISTRY))
    change = remove_contacts(con, selection_by_ids(ids), now=NOW, changed_by="test", dry_run=True)
    assert change.contacts == len(ids)
    return set(ids)


def test_case_and_spaces_mean_the_same_in_a_segment_and_in_remove(book):
    con, home = book
    _load(
        con,
        [
            {"lead_source": "Webinar"},
            {"lead_source": "webinar"},
            {"lead_source": " WEBINAR "},
            {"lead_source": "referral"},
            {},
        ],
    )
    where = "lead_source = webinar"
    assert _segment_members(con, home, "webinar", where) == {"c000", "c001", "c002"}
    assert _command_targets(con, where) == {"c000", "c001", "c002"}
    assert _command_targets(con, "lead_source in ('  Webinar', REFERRAL)") == {"c000", "c001", "c002", "c003"}
    # update selects the same people as well
    ids = matching_contact_ids(con, parse_where(where, REGISTRY))
    con.execute("BEGIN TRANSACTION")
    try:
        change = update_contacts(con, selection_by_ids(ids), {"company": "Acme"}, now=NOW, changed_by="test")
        assert change.contacts == 3
        assert con.execute("SELECT count(*) FROM contacts WHERE company = 'Acme'").fetchone()[0] == 3
    finally:
        con.execute("ROLLBACK")


# --- the property: random filters over random rows ---------------------------------------------------------

TEXTS = [
    "webinar",
    "Webinar",
    " WEBINAR ",
    "referral",
    "Ref",
    "ca",
    "CA",
    "New York",
    "o'brien",
    'x"y',
    "Ärzte",
    "ärzte",
]
DOMAINS = ["Example.COM", "example.com", "acme.io"]
DATES = ["2024-01-01", "2024-06-30", "2025-12-31", "not a date"]


def _quote(value: str) -> str:
    return f'"{value}"' if "'" in value else f"'{value}'"


@st.composite
def conditions(draw) -> str:
    kind = draw(st.sampled_from(["text", "domain", "custom_text", "number", "boolean", "date", "time", "null"]))
    if kind in ("text", "custom_text", "domain"):
        field = {
            "text": draw(st.sampled_from(["lead_source", "state", "company", "first_name"])),
            "custom_text": "custom.plan_tier",
            "domain": "email_domain",
        }[kind]
        pool = DOMAINS if kind == "domain" else TEXTS
        op = draw(st.sampled_from(["=", "!=", "in", "not in", "contains", "starts_with"]))
        if op in ("in", "not in"):
            values = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
            return f"{field} {op} ({', '.join(_quote(v) for v in values)})"
        value = draw(st.sampled_from(pool))
        if op in ("contains", "starts_with"):
            value = value[: draw(st.integers(1, max(1, len(value))))]
        return f"{field} {op} {_quote(value)}"
    if kind == "number":
        op = draw(st.sampled_from(["=", "!=", ">=", "<=", "in", "not in"]))
        if op in ("in", "not in"):
            return f"custom.seats {op} ({', '.join(draw(st.lists(st.sampled_from(['0', '5', '10']), min_size=1)))})"
        return f"custom.seats {op} {draw(st.sampled_from(['0', '5', '10', '7.5']))}"
    if kind == "boolean":
        return f"custom.is_partner {draw(st.sampled_from(['=', '!=']))} {draw(st.sampled_from(['yes', 'false']))}"
    if kind == "date":
        return f"consent_date {draw(st.sampled_from(['=', '!=', '>=', '<=']))} {draw(st.sampled_from(DATES[:3]))}"
    if kind == "time":
        return f"updated_at {draw(st.sampled_from(['>=', '<=']))} -{draw(st.integers(0, 60))}d"
    field = draw(st.sampled_from(["lead_source", "company", "custom.plan_tier", "email_domain", "consent_date"]))
    return f"{field} {draw(st.sampled_from(['is_null', 'not_null']))}"


rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "lead_source": st.none() | st.sampled_from(TEXTS),
            "state": st.none() | st.sampled_from(TEXTS),
            "company": st.none() | st.sampled_from(TEXTS),
            "first_name": st.none() | st.sampled_from(TEXTS),
            "email": st.none() | st.sampled_from(DOMAINS).map(lambda d: f"someone@{d}"),
            "consent_date": st.none() | st.sampled_from(DATES),
            "age_days": st.integers(0, 90),
            "custom": st.fixed_dictionaries(
                {},
                optional={
                    "plan_tier": st.sampled_from(TEXTS),
                    "seats": st.sampled_from([0, 5, 10, "10", "many"]),
                    "is_partner": st.sampled_from([True, False, "yes"]),
                },
            ),
        }
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, parts=st.lists(conditions(), min_size=1, max_size=3))
def test_a_segment_selects_what_update_and_remove_select(book, rows, parts):
    con, home = book
    _load(con, rows)
    where = " and ".join(parts)
    assert _segment_members(con, home, "property", where) == _command_targets(con, where), where


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=rows_strategy,
    field=st.sampled_from(["lead_source", "state", "company", "first_name"]),
    values=st.lists(st.sampled_from(TEXTS), min_size=1, max_size=3),
)
def test_text_membership_ignores_case_and_surrounding_spaces(book, rows, field, values):
    con, home = book
    _load(con, rows)
    where = f"{field} in ({', '.join(_quote(v) for v in values)})"
    wanted = {v.strip().lower() for v in values}
    expected = {
        f"c{i:03d}" for i, row in enumerate(rows) if row[field] is not None and row[field].strip().lower() in wanted
    }
    assert _segment_members(con, home, "membership", where) == expected
    assert _command_targets(con, where) == expected

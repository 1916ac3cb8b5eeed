"""Audience builds on a real DuckDB warehouse: membership, suppression, agent variables, freezing, export."""

from __future__ import annotations

import csv
import json

import polars as pl
import pytest
from test_contact_book import ANN, BOB, CAROL, NOW, merge

from callaro_pipeline.core.audiences import resolve_agent_variables
from callaro_pipeline.core.campaign_settings import AgentVariable
from callaro_pipeline.core.config import Campaign
from callaro_pipeline.core.contact_book import contact_id_for
from callaro_pipeline.core.errors import ConfigError, DncUnavailable
from callaro_pipeline.storage import dnc_loads
from callaro_pipeline.storage.audiences import build_audience, export_audience
from callaro_pipeline.storage.contact_book import undo_upload
from callaro_pipeline.storage.warehouse import Warehouse

NEW_YORK = {"timezone": "America/New_York", "timezone_candidates": ["America/New_York"], "timezone_source": "explicit"}
CONSENTED = {"consent": "yes", "consent_date": "2026-01-10", "consent_source": "webform"}
DAVE = "+12125550104"
UNLISTED = "+12125559999"


@pytest.fixture
def warehouse(tmp_path):
    return Warehouse(home=str(tmp_path))


def load_dnc_lists(con, campaign: Campaign, *listed: str) -> None:
    """Every list the campaign checks gets a load; `listed` phones go on the internal list."""
    for source in campaign.dnc_sources:
        dnc_loads.add_numbers(con, [UNLISTED], source=source)
    if listed:
        dnc_loads.add_numbers(con, list(listed), source="internal")


def audience(con, campaign: str) -> list[str]:
    rows = con.execute("SELECT phone_e164 FROM campaign_audiences WHERE campaign = ? ORDER BY phone_e164", [campaign])
    return [phone for (phone,) in rows.fetchall()]


# --- agent variables ---------------------------------------------------------------------------------------


def contacts_frame(*rows: dict) -> pl.DataFrame:
    base = {"contact_id": None, "phone_e164": None, "first_name": None, "company": None, "custom_fields": None}
    return pl.DataFrame([{**base, **row} for row in rows])


def test_variables_take_the_field_then_the_custom_field_then_the_static_value():
    contacts = contacts_frame(
        {"contact_id": "a", "first_name": "Ann", "custom_fields": '{"first_name": "Annie", "plan": "pro"}'},
        {"contact_id": "b", "first_name": " ", "custom_fields": '{"first_name": "Bobby"}'},
        {"contact_id": "c", "first_name": None, "custom_fields": None},
    )
    variables = [
        AgentVariable(name="name", source="field", field="first_name", value="there"),
        AgentVariable(name="plan", source="custom", value="basic"),
        AgentVariable(name="offer", source="static", value=20),
        AgentVariable(name="seller", source="field", field="company"),
    ]
    complete, missing = resolve_agent_variables(contacts, variables)

    assert missing.is_empty()
    assert [json.loads(v) for v in complete.sort("contact_id")["agent_variables"]] == [
        {"name": "Ann", "plan": "pro", "offer": "20", "seller": None},
        {"name": "Bobby", "plan": "basic", "offer": "20", "seller": None},
        {"name": "there", "plan": "basic", "offer": "20", "seller": None},
    ]


def test_contacts_missing_a_required_variable_are_reported_and_left_out():
    contacts = contacts_frame(
        {"contact_id": "a", "first_name": "Ann", "company": "Acme"},
        {"contact_id": "b", "first_name": "Bob"},
        {"contact_id": "c"},
    )
    variables = [
        AgentVariable(name="name", source="field", field="first_name", required=True),
        AgentVariable(name="company", source="field", required=True),
    ]
    complete, missing = resolve_agent_variables(contacts, variables)

    assert complete["contact_id"].to_list() == ["a"]
    assert missing.sort("contact_id").rows() == [("b", ["company"]), ("c", ["name", "company"])]


@pytest.mark.parametrize(
    "variable",
    [
        AgentVariable(name="x", source="field", field="no_such_field"),
        AgentVariable(name="x", source="custom", field='x"; DROP TABLE contacts; --'),
    ],
)
def test_variables_naming_unknown_or_unsafe_fields_are_refused(variable):
    with pytest.raises(ConfigError):
        resolve_agent_variables(contacts_frame({"contact_id": "a"}), [variable])


# --- builds ------------------------------------------------------------------------------------------------


def test_suppressed_and_unconsented_contacts_never_reach_the_audience(warehouse):
    campaign = Campaign(
        name="spring",
        require_consent=True,
        agent_variables=[AgentVariable(name="name", source="field", field="first_name", required=True)],
    )
    with warehouse.transaction() as con:
        merge(
            con,
            "u1",
            "spring",
            {"phone_e164": ANN, "first_name": "Ann", **NEW_YORK, **CONSENTED},
            {"phone_e164": BOB, "first_name": "Bob", **NEW_YORK, **CONSENTED},
            {"phone_e164": CAROL, "first_name": "Carol", **NEW_YORK, "consent": "yes"},
            {"phone_e164": DAVE, **NEW_YORK, **CONSENTED},
        )
        load_dnc_lists(con, campaign, BOB)
        build = build_audience(con, campaign, now=NOW)
        [member] = con.execute("SELECT * FROM campaign_audiences").pl().rows(named=True)
        callable_now = con.execute("SELECT phone_e164 FROM callable_contacts('spring', ?)", [NOW]).fetchall()

    assert (build.members, build.suppressed, build.missing_required, build.not_callable) == (1, 2, 1, 0)
    assert build.missing_sample == ["+1212*****04"]
    assert build.detail["suppressed_by_reason"] == {"dnc:internal": 1, "no_consent": 1}
    assert member["phone_e164"] == ANN and member["contact_id"] == contact_id_for(ANN)
    assert json.loads(member["agent_variables"]) == {"name": "Ann"}
    assert json.loads(member["consent_evidence"]) == {
        "consent": "yes",
        "consent_date": "2026-01-10",
        "consent_source": "webform",
    }
    assert "internal" in json.loads(member["dnc_snapshot"])
    assert member["timezone_source"] == "explicit" and member["build_id"] == build.build_id
    # Monday 10:00 in New York, inside the default 09:00-20:00 window: callable right away.
    assert member["next_call_start_utc"] == NOW.replace(tzinfo=None)
    assert callable_now == [(ANN,)]


def test_contacts_that_can_never_be_called_in_the_window_are_left_out(warehouse):
    campaign = Campaign(name="spring")
    with warehouse.transaction() as con:
        merge(
            con,
            "u1",
            "spring",
            {"phone_e164": ANN, **NEW_YORK},
            {"phone_e164": BOB, "timezone_candidates": [], "timezone_source": "unknown"},
        )
        load_dnc_lists(con, campaign)
        build = build_audience(con, campaign, now=NOW)
        assert audience(con, "spring") == [ANN]
    assert build.not_callable == 1


def test_audience_uses_only_the_listed_uploads_when_the_campaign_names_them(warehouse):
    campaign = Campaign(name="spring", audience_uploads=["u2"])
    with warehouse.transaction() as con:
        merge(con, "u1", "spring", {"phone_e164": ANN, **NEW_YORK})
        merge(con, "u2", "spring", {"phone_e164": BOB, **NEW_YORK})
        merge(con, "u3", "autumn", {"phone_e164": CAROL, **NEW_YORK})
        load_dnc_lists(con, campaign)
        build_audience(con, campaign, now=NOW)
        assert audience(con, "spring") == [BOB]


def test_undone_upload_leaves_the_rebuilt_audience_while_the_old_build_stays_frozen(warehouse):
    campaign = Campaign(name="spring")
    with warehouse.transaction() as con:
        merge(con, "u1", "spring", {"phone_e164": ANN, **NEW_YORK})
        merge(con, "u2", "spring", {"phone_e164": BOB, **NEW_YORK})
        load_dnc_lists(con, campaign)
        first = build_audience(con, campaign, now=NOW)
        undo_upload(con, upload_id="u2", now=NOW, changed_by="alice")
        second = build_audience(con, campaign, now=NOW)

        assert audience(con, "spring") == [ANN]
        frozen = con.execute(
            "SELECT phone_e164 FROM audience_members WHERE build_id = ? ORDER BY phone_e164", [first.build_id]
        ).fetchall()
        assert frozen == [(ANN,), (BOB,)]
        assert con.execute("SELECT DISTINCT build_id FROM campaign_audiences").fetchall() == [(second.build_id,)]
    assert (first.members, second.members) == (2, 1)


def test_untrusted_dnc_lists_leave_the_previous_audience_untouched(warehouse):
    campaign = Campaign(name="spring")
    strict = Campaign(name="spring", require_national_dnc=True)
    with warehouse.transaction() as con:
        merge(con, "u1", "spring", {"phone_e164": ANN, **NEW_YORK})
        load_dnc_lists(con, campaign)
        build_audience(con, campaign, now=NOW)
        merge(con, "u2", "spring", {"phone_e164": BOB, **NEW_YORK})
        before = con.execute("SELECT count(*) FROM audience_builds").fetchone()

        # The national list was only ever typed in by hand: no registry snapshot, so it cannot be trusted.
        with pytest.raises(DncUnavailable, match="national"):
            build_audience(con, strict, now=NOW)

        assert con.execute("SELECT count(*) FROM audience_builds").fetchone() == before
        assert audience(con, "spring") == [ANN]


def test_a_campaign_requiring_the_national_list_is_not_built_without_it(warehouse):
    with warehouse.transaction() as con:
        merge(con, "u1", "spring", {"phone_e164": ANN, **NEW_YORK})
        dnc_loads.add_numbers(con, [UNLISTED], source="internal")
        with pytest.raises(DncUnavailable, match="national"):
            build_audience(con, Campaign(name="spring", require_national_dnc=True), now=NOW)
        assert con.execute("SELECT count(*) FROM audience_builds").fetchone() == (0,)


# --- export ------------------------------------------------------------------------------------------------


def built_campaign(warehouse, *rows: dict) -> None:
    campaign = Campaign(name="spring", agent_variables=[AgentVariable(name="note", source="custom", field="note")])
    with warehouse.transaction() as con:
        merge(con, "u1", "spring", *rows)
        load_dnc_lists(con, campaign)
        build_audience(con, campaign, now=NOW)


def test_csv_export_makes_formula_cells_inert(warehouse, tmp_path):
    built_campaign(
        warehouse,
        {"phone_e164": ANN, **NEW_YORK, "external_id": '=HYPERLINK("http://x")'},
        {"phone_e164": BOB, **NEW_YORK, "external_id": "-42"},
    )
    out = tmp_path / "exports" / "spring.csv"
    with warehouse.connect() as con:
        assert export_audience(con, "spring", out) == 2

    rows = {row["phone_e164"]: row for row in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows[ANN]["external_id"] == '\'=HYPERLINK("http://x")'
    assert rows[BOB]["external_id"] == "-42"
    assert rows[ANN]["timezone_candidates"] == "America/New_York"
    assert [path.name for path in out.parent.iterdir()] == ["spring.csv"]


def test_parquet_export_keeps_types(warehouse, tmp_path):
    built_campaign(warehouse, {"phone_e164": ANN, **NEW_YORK})
    out = tmp_path / "spring.parquet"
    with warehouse.connect() as con:
        assert export_audience(con, "spring", out) == 1
    exported = pl.read_parquet(out)
    assert exported["timezone_candidates"].to_list() == [["America/New_York"]]
    assert exported.schema["next_call_start_utc"].is_temporal()


def test_export_refuses_other_formats_and_unbuilt_campaigns(warehouse, tmp_path):
    built_campaign(warehouse, {"phone_e164": ANN, **NEW_YORK})
    with warehouse.connect() as con:
        with pytest.raises(ConfigError):
            export_audience(con, "spring", tmp_path / "spring.xlsx")
        with pytest.raises(ConfigError):
            export_audience(con, "autumn", tmp_path / "autumn.csv")


def test_named_segments_feed_the_audience_from_any_campaign(warehouse):
    campaign = Campaign(name="spring", audience_segments=["acme", "florida"])
    with warehouse.transaction() as con:
        merge(con, "u1", "spring", {"phone_e164": ANN, **NEW_YORK, "company": "Acme"}, {"phone_e164": BOB, **NEW_YORK})
        merge(con, "u2", "autumn", {"phone_e164": CAROL, **NEW_YORK, "state": "FL"})
        merge(con, "u3", "autumn", {"phone_e164": DAVE, **NEW_YORK, "state": "FL"})
        con.execute("CREATE SCHEMA IF NOT EXISTS segments")
        con.execute("CREATE VIEW segments.acme AS SELECT contact_id FROM contacts WHERE company = 'Acme'")
        # A segment materialized as a table before the undo below still lists DAVE: he must stay out.
        con.execute("CREATE TABLE segments.florida AS SELECT contact_id FROM contacts WHERE state = 'FL'")
        undo_upload(con, upload_id="u3", now=NOW, changed_by="alice")
        load_dnc_lists(con, campaign)
        build_audience(con, campaign, now=NOW)
        assert audience(con, "spring") == [CAROL, ANN]


def test_a_segment_that_was_never_built_is_a_clear_error(warehouse):
    campaign = Campaign(name="spring", audience_segments=["nowhere"])
    with warehouse.transaction() as con:
        load_dnc_lists(con, campaign)
        with pytest.raises(ConfigError, match="nowhere"):
            build_audience(con, campaign, now=NOW)

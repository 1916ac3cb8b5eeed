"""The contact book on a real DuckDB warehouse: merging uploads, undo, and manual management."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl
import pytest

from callaro_pipeline.core.contact_book import contact_id_for
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.storage.contact_book import find_contacts, remove_contacts, undo_upload, update_contacts
from callaro_pipeline.storage.contact_book_merge import merge_upload_into_book
from callaro_pipeline.storage.warehouse import Warehouse

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
ANN = "+14155550101"
BOB = "+14155550102"
CAROL = "+13055550103"
INJECTION = 'x"; DROP TABLE contacts; --'


def released_rows(*rows: dict) -> pl.DataFrame:
    """An upload's released rows with the validated_contacts columns the book takes."""
    base = {
        "phone_e164": None,
        "first_name": None,
        "last_name": None,
        "email": None,
        "state": None,
        "timezone": None,
        "timezone_candidates": None,
        "timezone_source": "phone",
        "consent": None,
        "consent_date": None,
        "consent_source": None,
        "custom_fields": None,
    }
    records = [{**base, "row_number": index + 2, **row} for index, row in enumerate(rows)]
    return pl.DataFrame(records, schema_overrides={"timezone_candidates": pl.List(pl.Utf8)})


def register_upload(con, upload_id: str, campaign: str) -> None:
    con.execute(
        "INSERT INTO uploads (upload_id, campaign, stored_path, sha256, received_at, status) "
        "VALUES (?, ?, 'stored', 'sha', ?, 'imported')",
        [upload_id, campaign, NOW.replace(tzinfo=None)],
    )


def merge(con, upload_id: str, campaign: str, *rows: dict) -> dict:
    if not con.execute("SELECT 1 FROM uploads WHERE upload_id = ?", [upload_id]).fetchone():
        register_upload(con, upload_id, campaign)
    return merge_upload_into_book(con, upload_id=upload_id, campaign=campaign, contacts=released_rows(*rows), now=NOW)


def table(con, sql: str, params=None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


@pytest.fixture
def con(tmp_path):
    with Warehouse(home=str(tmp_path)).transaction() as connection:
        yield connection


def test_contact_id_is_stable_and_the_same_in_sql_and_python(con):
    merge(con, "u1", "spring", {"phone_e164": ANN})
    # Pinned: call results and other systems keep these ids, so the derivation must never change.
    assert contact_id_for(ANN) == "c_54a97a4595350c4c"
    assert table(con, "SELECT contact_id FROM contacts") == [("c_54a97a4595350c4c",)]


def test_merging_the_same_upload_twice_leaves_the_same_rows(con):
    rows = ({"phone_e164": ANN, "first_name": "Ann"}, {"phone_e164": BOB, "first_name": "Bob"})
    first = merge(con, "u1", "spring", *rows)
    snapshot = table(con, "SELECT * EXCLUDE (updated_at) FROM contacts ORDER BY contact_id")
    links = table(con, "SELECT * FROM campaign_contacts ORDER BY contact_id")
    second = merge(con, "u1", "spring", *rows)

    assert first == {"inserted": 2, "updated": 0, "linked": 2}
    assert second == {"inserted": 0, "updated": 2, "linked": 2}
    assert table(con, "SELECT * EXCLUDE (updated_at) FROM contacts ORDER BY contact_id") == snapshot
    assert table(con, "SELECT * FROM campaign_contacts ORDER BY contact_id") == links


def test_two_uploads_of_one_phone_make_one_contact_with_the_latest_non_empty_values(con):
    merge(
        con,
        "u1",
        "spring",
        {"phone_e164": ANN, "first_name": "Ann", "email": "ann@old.example", "custom_fields": '{"plan": "pro"}'},
    )
    merge(
        con,
        "u2",
        "autumn",
        {"phone_e164": ANN, "first_name": " ", "email": "ann@new.example", "custom_fields": '{"size": 5, "plan": ""}'},
    )

    book = find_contacts(con, [])
    assert book.height == 1
    row = book.row(0, named=True)
    assert (row["first_name"], row["email"]) == ("Ann", "ann@new.example")
    assert json.loads(row["custom_fields"]) == {"plan": "pro", "size": 5}
    assert (row["first_upload_id"], row["last_upload_id"]) == ("u1", "u2")
    assert table(con, "SELECT campaign, upload_id FROM campaign_contacts ORDER BY upload_id") == [
        ("spring", "u1"),
        ("autumn", "u2"),
    ]


def test_time_zone_and_consent_move_as_groups(con):
    merge(
        con,
        "u1",
        "spring",
        {
            "phone_e164": ANN,
            "timezone": "America/Los_Angeles",
            "timezone_candidates": ["America/Los_Angeles"],
            "timezone_source": "explicit",
            "consent": "yes",
            "consent_date": "2026-01-05",
            "consent_source": "webform",
        },
    )
    merge(
        con,
        "u2",
        "spring",
        {
            "phone_e164": ANN,
            "timezone": None,
            "timezone_candidates": ["America/Chicago", "America/Denver"],
            "timezone_source": "ambiguous",
            "consent": "no",
        },
    )
    row = find_contacts(con, []).row(0, named=True)
    assert (row["timezone"], row["timezone_candidates"], row["timezone_source"]) == (
        "America/Los_Angeles",
        ["America/Los_Angeles"],
        "explicit",
    )
    assert (row["consent"], row["consent_date"], row["consent_source"]) == ("no", None, None)


def test_merge_records_counts_without_personal_data(con):
    merge(con, "u1", "spring", {"phone_e164": ANN, "first_name": "Ann"})
    [(who, action, upload_id, detail)] = table(con, "SELECT changed_by, action, upload_id, detail FROM contact_changes")
    assert (who, action, upload_id) == ("pipeline", "upload_merged", "u1")
    assert json.loads(detail) == {"inserted": 1, "updated": 0, "linked": 1}
    assert ANN not in detail and "Ann" not in detail


def test_undo_unlinks_the_upload_keeps_contacts_of_other_campaigns_and_is_idempotent(con):
    merge(con, "u1", "spring", {"phone_e164": ANN}, {"phone_e164": BOB})
    merge(con, "u2", "autumn", {"phone_e164": BOB})

    first = undo_upload(con, upload_id="u1", now=NOW, changed_by="alice")
    second = undo_upload(con, upload_id="u1", now=NOW, changed_by="alice")

    assert first == {"unlinked": 2, "removed": 1}
    assert second == {"unlinked": 0, "removed": 0}
    assert table(con, "SELECT phone_e164 FROM contacts") == [(BOB,)]
    assert table(con, "SELECT campaign, upload_id FROM campaign_contacts") == [("autumn", "u2")]
    assert table(con, "SELECT status FROM uploads WHERE upload_id = 'u1'") == [("undone",)]
    assert table(con, "SELECT changed_by FROM contact_changes WHERE action = 'upload_undone'") == [("alice",)]


def test_undo_of_an_unknown_upload_is_a_usage_error(con):
    with pytest.raises(ConfigError):
        undo_upload(con, upload_id="nope", now=NOW, changed_by="alice")


def test_update_with_dry_run_counts_then_changes_and_records_each_contact(con):
    merge(con, "u1", "spring", {"phone_e164": ANN, "state": "CA"}, {"phone_e164": BOB, "state": "CA"})
    merge(con, "u2", "spring", {"phone_e164": CAROL, "state": "FL"})
    conditions = [("state", "=", "CA")]

    dry = update_contacts(con, conditions, {"company": "Acme"}, now=NOW, changed_by="alice", dry_run=True)
    assert (dry.contacts, dry.campaigns) == (2, ["spring"])
    assert find_contacts(con, [("company", "not_null", None)]).height == 0

    done = update_contacts(
        con, conditions, {"company": "Acme", "timezone": "America/New_York"}, now=NOW, changed_by="alice"
    )
    assert done.contacts == 2
    changed = find_contacts(con, [("company", "=", "Acme")])
    assert changed["phone_e164"].to_list() == sorted([ANN, BOB], key=contact_id_for)
    assert changed["timezone_candidates"].to_list() == [["America/New_York"]] * 2
    assert set(changed["timezone_source"]) == {"manual"}
    records = table(con, "SELECT contact_id, changed_by, detail FROM contact_changes WHERE action = 'update'")
    assert sorted(r[0] for r in records) == sorted(changed["contact_id"])
    assert json.loads(records[0][2]) == {
        "fields": ["company", "timezone"],
        "conditions": [["state", "="]],
        "matched": 2,
    }


def test_remove_with_dry_run_then_removes_from_book_and_campaigns(con):
    merge(con, "u1", "spring", {"phone_e164": ANN, "email": "ann@example.com"}, {"phone_e164": BOB})
    conditions = [("email", "contains", "@EXAMPLE.com")]

    assert remove_contacts(con, conditions, now=NOW, changed_by="alice", dry_run=True).contacts == 1
    assert find_contacts(con, []).height == 2
    assert remove_contacts(con, conditions, now=NOW, changed_by="alice").contacts == 1
    assert find_contacts(con, [])["phone_e164"].to_list() == [BOB]
    assert table(con, "SELECT count(*) FROM campaign_contacts") == [(1,)]
    assert table(con, "SELECT action, contact_id FROM contact_changes WHERE action = 'remove'") == [
        ("remove", contact_id_for(ANN))
    ]


def test_conditions_cover_every_operator_and_custom_fields(con):
    merge(
        con,
        "u1",
        "spring",
        {"phone_e164": ANN, "first_name": "Ann", "custom_fields": '{"plan": "pro"}'},
        {"phone_e164": BOB, "first_name": "Bob"},
        {"phone_e164": CAROL, "first_name": "Carol", "custom_fields": '{"plan": "basic"}'},
    )

    def names(*conditions):
        return sorted(find_contacts(con, list(conditions))["first_name"])

    assert names(("first_name", "=", "Ann")) == ["Ann"]
    assert names(("first_name", "!=", "Ann")) == ["Bob", "Carol"]
    assert names(("first_name", "in", "Ann, Bob")) == ["Ann", "Bob"]
    assert names(("first_name", "in", ["Carol"])) == ["Carol"]
    assert names(("phone_e164", "starts_with", "+1305")) == ["Carol"]
    assert names(("custom.plan", "=", "pro")) == ["Ann"]
    assert names(("custom.plan", "is_null", None)) == ["Bob"]
    assert names(("custom.plan", "not_null", None), ("first_name", "contains", "aro")) == ["Carol"]


@pytest.mark.parametrize(
    "conditions",
    [
        [(INJECTION, "=", "x")],
        [("first_name", INJECTION, "x")],
        [("custom." + INJECTION, "=", "x")],
        [("first_name", "=", None)],
        [("first_name", "in", [])],
    ],
)
def test_bad_conditions_are_refused(con, conditions):
    with pytest.raises(ConfigError):
        find_contacts(con, conditions)


@pytest.mark.parametrize("changes", [{"phone_e164": "+14155550199"}, {"contact_id": "c_x"}, {INJECTION: "x"}, {}])
def test_only_editable_fields_can_be_set(con, changes):
    merge(con, "u1", "spring", {"phone_e164": ANN})
    with pytest.raises(ConfigError):
        update_contacts(con, [("phone_e164", "=", ANN)], changes, now=NOW, changed_by="alice")


def test_changes_without_conditions_are_refused(con):
    merge(con, "u1", "spring", {"phone_e164": ANN})
    with pytest.raises(ConfigError):
        remove_contacts(con, [], now=NOW, changed_by="alice")
    with pytest.raises(ConfigError):
        update_contacts(con, [], {"company": "x"}, now=NOW, changed_by="alice")


def test_injection_through_values_is_inert(con):
    merge(con, "u1", "spring", {"phone_e164": ANN, "first_name": "Ann"})

    assert find_contacts(con, [("first_name", "=", INJECTION)]).height == 0
    assert remove_contacts(con, [("first_name", "in", [INJECTION])], now=NOW, changed_by="alice").contacts == 0
    update_contacts(con, [("first_name", "=", "Ann")], {"company": INJECTION}, now=NOW, changed_by="alice")

    assert find_contacts(con, [("company", "=", INJECTION)])["phone_e164"].to_list() == [ANN]
    assert table(con, "SELECT count(*) FROM contacts") == [(1,)]


# --- extensions and other numbers ----------------------------------------------------------------------------


def test_one_switchboard_number_with_two_extensions_is_two_contacts_and_ids_without_one_stay(con):
    counts = merge(
        con,
        "u1",
        "spring",
        {"phone_e164": ANN, "phone_extension": "12", "first_name": "Ann"},
        {"phone_e164": ANN, "phone_extension": "34", "first_name": "Bob"},
        {"phone_e164": ANN, "first_name": "Reception"},
        {"phone_e164": ANN, "phone_extension": "12", "first_name": "Ann again"},  # the same person: first row wins
    )
    assert counts == {"inserted": 3, "updated": 0, "linked": 3}
    rows = table(con, "SELECT contact_id, phone_extension, first_name FROM contacts ORDER BY first_name")
    assert rows == [
        (contact_id_for(ANN, "12"), "12", "Ann"),
        (contact_id_for(ANN, "34"), "34", "Bob"),
        ("c_54a97a4595350c4c", None, "Reception"),  # without an extension: the id of the phone alone, as ever
    ]
    assert contact_id_for(ANN, " ") == contact_id_for(ANN) == "c_54a97a4595350c4c"
    assert len({contact_id_for(ANN, "12"), contact_id_for(ANN, "34"), contact_id_for(ANN)}) == 3
    # a later upload of one extension updates that contact only
    merge(con, "u2", "spring", {"phone_e164": ANN, "phone_extension": "34", "email": "bob@example.com"})
    assert table(con, "SELECT phone_extension FROM contacts WHERE email IS NOT NULL") == [("34",)]


def test_a_no_revokes_its_extension_and_a_no_for_the_main_number_revokes_every_extension(con):
    consented = {"consent": "yes", "consent_date": "2026-01-02", "consent_source": "web"}
    merge(
        con,
        "u1",
        "spring",
        *({"phone_e164": phone, "phone_extension": ext, **consented} for phone, ext in ((ANN, "12"), (ANN, "34"))),
        *({"phone_e164": phone, "phone_extension": ext, **consented} for phone, ext in ((BOB, "7"), (BOB, "8"))),
    )
    con.execute(
        "INSERT INTO validated_contacts (upload_id, row_number, phone_e164, phone_extension, consent, "
        "timezone_source) VALUES ('u2', 2, ?, '12', 'no', 'phone'), ('u2', 3, ?, NULL, 'no', 'phone')",
        [ANN, BOB],
    )
    merge(con, "u2", "spring", {"phone_e164": CAROL})
    consents = table(
        con, "SELECT phone_e164, phone_extension, consent FROM contacts WHERE phone_e164 <> ? ORDER BY 1, 2", [CAROL]
    )
    # ANN's "no" was given for extension 12 only; BOB's for the main number covers every extension
    assert consents == [(ANN, "12", "no"), (ANN, "34", "yes"), (BOB, "7", "no"), (BOB, "8", "no")]


def test_other_numbers_are_kept_on_the_contact_as_a_union_the_uploads_first(con):
    merge(con, "u1", "spring", {"phone_e164": ANN, "other_phones_e164": [BOB]})
    merge(con, "u2", "spring", {"phone_e164": ANN, "other_phones_e164": None})
    assert table(con, "SELECT other_phones_e164 FROM contacts") == [([BOB],)]
    merge(con, "u3", "spring", {"phone_e164": ANN, "other_phones_e164": [CAROL, BOB]})
    assert table(con, "SELECT other_phones_e164 FROM contacts") == [([CAROL, BOB],)]
    merge(con, "u4", "spring", {"phone_e164": ANN, "other_phones_e164": ["+12125550104"]})
    assert table(con, "SELECT other_phones_e164 FROM contacts") == [(["+12125550104", CAROL, BOB],)]

"""DNC lists and consent against a real DuckDB warehouse in tmp_path."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from callaro_pipeline.core.config import Campaign
from callaro_pipeline.core.errors import DncUnavailable
from callaro_pipeline.storage.dnc_loads import add_numbers, import_dnc_file
from callaro_pipeline.storage.suppression import dnc_problems, scrub
from callaro_pipeline.storage.warehouse import Warehouse

LISTED = "+14155550134"
OTHER = "+12125550199"
NOW = datetime(2026, 3, 20, 12, 0)


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(home=str(tmp_path / "home"))


def contacts(*phones: str, consent: str | None = "yes", date_: str | None = "2026-01-02", source: str | None = "web"):
    return pl.DataFrame(
        {
            "phone_e164": list(phones),
            "consent": [consent] * len(phones),
            "consent_date": [date_] * len(phones),
            "consent_source": [source] * len(phones),
        },
        schema={name: pl.Utf8 for name in ("phone_e164", "consent", "consent_date", "consent_source")},
    )


def reasons_for(con, phones: list[str], campaign: Campaign | None = None) -> list[list[str]]:
    return scrub(con, contacts(*phones), campaign=campaign or Campaign(name="spring"))["reasons"].to_list()


def national_file(directory: Path, name: str, numbers: list[int], *, junk: list[str] = ()) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("\n".join([*(str(n) for n in numbers), *junk]) + "\n", encoding="ascii")
    return path


def active_count(con, source: str) -> int:
    return con.execute("SELECT count(*) FROM dnc WHERE source = ? AND active", [source]).fetchone()[0]


@pytest.mark.parametrize("typed", ["(415) 555-0134", "415.555.0134", "+1 415-555-0134", "14155550134", "4155550134"])
def test_every_format_of_a_listed_number_is_suppressed(warehouse, typed):
    with warehouse.connect() as con:
        result = add_numbers(con, [typed, "not a phone"], reason="asked on call")
        assert (result.rows_loaded, result.rows_rejected) == (1, 1)
        assert reasons_for(con, [LISTED, OTHER]) == [["dnc:internal"], []]
        row = con.execute("SELECT phone_e164, source, reason, active FROM dnc").fetchone()
        assert row == (LISTED, "internal", "asked on call", True)


def test_bare_national_line_is_suppressed(warehouse, tmp_path):
    path = national_file(tmp_path / "in", "dnc_415.txt", [4155550134, 4155550135], junk=[""])
    with warehouse.connect() as con:
        result = import_dnc_file(con, path, source="national", snapshot_date=date(2026, 3, 1))
        assert (result.rows_loaded, result.rows_rejected) == (2, 0)
        assert reasons_for(con, ["+14155550134", "+14155550136"]) == [["dnc:national"], []]
        load = con.execute("SELECT kind, file_name, sha256, stored_path FROM dnc_loads").fetchone()
    assert load[:2] == ("full", "dnc_415.txt")
    stored = Path(load[3])
    assert stored.is_relative_to(warehouse.paths.dnc_files) and stored.read_bytes() == path.read_bytes()


def test_internal_csv_uses_the_phone_column_in_any_format(warehouse, tmp_path):
    path = tmp_path / "internal.csv"
    path.write_text("account number;name;Phone\n1;Ann;(415) 555-0134\n2;Bob;212.555.0199\n3;Cy;\n", encoding="utf-8")
    with warehouse.connect() as con:
        result = import_dnc_file(con, path, source="internal")
        assert (result.rows_loaded, result.rows_rejected) == (2, 0)
        assert reasons_for(con, [LISTED, OTHER, "+13125550100"]) == [["dnc:internal"], ["dnc:internal"], []]


def test_reasons_name_every_list_and_only_the_campaigns_own_list(warehouse, tmp_path):
    with warehouse.connect() as con:
        add_numbers(con, [LISTED], source="call_outcome", reason="hung up: do not call")
        add_numbers(con, [LISTED, OTHER], source="campaign:spring")
        add_numbers(con, [OTHER], source="campaign:autumn")
        import_dnc_file(
            con, national_file(tmp_path, "n.txt", [4155550134]), source="national", snapshot_date=date(2026, 3, 1)
        )
        assert reasons_for(con, [LISTED, OTHER]) == [
            ["dnc:call_outcome", "dnc:national", "dnc:campaign:spring"],
            ["dnc:campaign:spring"],
        ]
        assert reasons_for(con, [OTHER], Campaign(name="winter")) == [[]]


def test_scrub_keeps_rows_and_records_the_snapshot_checked(warehouse, tmp_path):
    with warehouse.connect() as con:
        load = import_dnc_file(
            con, national_file(tmp_path, "n.txt", [4155550134]), source="national", snapshot_date=date(2026, 3, 1)
        )
        frame = contacts(OTHER, LISTED, LISTED).with_columns(pl.Series("contact_id", ["a", "b", "c"]))
        out = scrub(con, frame, campaign=Campaign(name="spring"))
    assert out["contact_id"].to_list() == ["a", "b", "c"]
    assert out.schema["reasons"] == pl.List(pl.Utf8)
    snapshot = json.loads(out["dnc_snapshot"][0])
    assert snapshot["national"]["latest_load_id"] == load.load_id
    assert snapshot["national"]["snapshot_date"] == "2026-03-01"
    assert snapshot["internal"] is None


def test_removal_is_an_audited_event_not_a_delete(warehouse, tmp_path):
    """`callaro dnc import --kind delete --source internal FILE`: the numbers are unlisted by removal events."""
    with warehouse.connect() as con:
        add_numbers(con, [LISTED, OTHER])
        mistakes = national_file(tmp_path, "mistakes.txt", [4155550134])
        assert import_dnc_file(con, mistakes, source="internal", kind="delete").rows_loaded == 1
        assert reasons_for(con, [LISTED, OTHER]) == [[], ["dnc:internal"]]
        assert con.execute("SELECT count(*) FROM dnc_numbers").fetchone()[0] == 2
        assert con.execute("SELECT reason FROM dnc_removals").fetchall() == [("delete list mistakes.txt",)]
        assert con.execute("SELECT active FROM dnc WHERE phone_e164 = ?", [LISTED]).fetchone() == (False,)
        add_numbers(con, [LISTED], reason="asked again")
        assert reasons_for(con, [LISTED]) == [["dnc:internal"]]


def test_national_change_lists_apply_on_top_of_the_latest_snapshot(warehouse, tmp_path):
    base = [2125550100 + i for i in range(10)]
    with warehouse.connect() as con:
        import_dnc_file(
            con, national_file(tmp_path, "full.txt", base), source="national", snapshot_date=date(2026, 2, 1)
        )
        import_dnc_file(
            con,
            national_file(tmp_path, "add.txt", [4155550134]),
            source="national",
            kind="add",
            snapshot_date=date(2026, 2, 8),
        )
        import_dnc_file(
            con,
            national_file(tmp_path, "del.txt", [2125550100]),
            source="national",
            kind="delete",
            snapshot_date=date(2026, 2, 8),
        )
        assert reasons_for(con, [LISTED, "+12125550100", "+12125550101"]) == [["dnc:national"], [], ["dnc:national"]]
        # A newer full snapshot of area code 212 replaces 212 only; the 415 addition stays listed.
        newer = [2125550100 + i for i in range(1, 10)] + [2125550200]
        import_dnc_file(
            con, national_file(tmp_path, "full2.txt", newer), source="national", snapshot_date=date(2026, 3, 1)
        )
        assert reasons_for(con, [LISTED, "+12125550100", "+12125550200"]) == [["dnc:national"], [], ["dnc:national"]]


def test_per_area_code_files_each_replace_only_their_area_code(warehouse, tmp_path):
    with warehouse.connect() as con:
        import_dnc_file(con, national_file(tmp_path, "212.txt", [2125550100]), source="national")
        import_dnc_file(con, national_file(tmp_path, "415.txt", [4155550134]), source="national")
        assert reasons_for(con, [LISTED, "+12125550100"]) == [["dnc:national"], ["dnc:national"]]


def test_unreadable_file_fails_closed_and_keeps_the_list(warehouse, tmp_path):
    with warehouse.connect() as con:
        add_numbers(con, [LISTED])
        with pytest.raises(DncUnavailable, match="cannot be read"):
            import_dnc_file(con, tmp_path / "missing.csv", source="internal")
        with pytest.raises(DncUnavailable, match="cannot be read"):
            import_dnc_file(con, tmp_path, source="internal")
        assert reasons_for(con, [LISTED]) == [["dnc:internal"]]
        assert con.execute("SELECT count(*) FROM dnc_loads").fetchone()[0] == 1


@pytest.mark.parametrize("content", [b"", b"\n\n", b"phone\n", b"junk\nmore junk\n", b"\x00\x01\x02binary\xff"])
def test_file_without_a_good_row_fails_closed_and_loads_nothing(warehouse, tmp_path, content):
    """What a 'skip empty frame' IO manager would turn into a wipe: here an error, and the list stays."""
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with warehouse.connect() as con:
        import_dnc_file(
            con, national_file(tmp_path, "n.txt", [4155550134]), source="national", snapshot_date=date(2026, 3, 1)
        )
        for source in ("national", "internal"):
            with pytest.raises(DncUnavailable, match="no valid phone number|cannot be read|not a readable"):
                import_dnc_file(con, path, source=source)
        assert reasons_for(con, [LISTED]) == [["dnc:national"]]
        assert con.execute("SELECT count(*) FROM dnc_loads").fetchone()[0] == 1
        assert dnc_problems(con, sources=["national"], require_national=True, now=NOW) == []


def test_no_valid_typed_number_adds_nothing(warehouse):
    with warehouse.connect() as con:
        with pytest.raises(DncUnavailable):
            add_numbers(con, ["hello", ""])
        assert con.execute("SELECT count(*) FROM dnc_loads").fetchone()[0] == 0


def test_shrunk_full_snapshot_fails_closed(warehouse, tmp_path):
    numbers = [2125550100 + i for i in range(100)]
    with warehouse.connect() as con:
        import_dnc_file(con, national_file(tmp_path, "a.txt", numbers), source="national")
        import_dnc_file(con, national_file(tmp_path, "b.txt", numbers[:98]), source="national")  # 2%: churn
        with pytest.raises(DncUnavailable, match="shrank unexpectedly"):
            import_dnc_file(con, national_file(tmp_path, "c.txt", numbers[:90]), source="national")
        assert active_count(con, "national") == 98
        assert con.execute("SELECT count(*) FROM dnc_loads").fetchone()[0] == 2
        # Change lists are not snapshots: no shrink rule.
        import_dnc_file(con, national_file(tmp_path, "d.txt", numbers[:1]), source="national", kind="add")


def test_shrunk_internal_full_file_fails_closed(warehouse, tmp_path):
    path = tmp_path / "internal.csv"
    path.write_text("phone\n" + "\n".join(f"212555{i:04d}" for i in range(100, 120)) + "\n")
    with warehouse.connect() as con:
        import_dnc_file(con, path, source="internal")
        path.write_text("phone\n2125550100\n")
        with pytest.raises(DncUnavailable, match="shrank"):
            import_dnc_file(con, path, source="internal")
        assert active_count(con, "internal") == 20


def test_failed_load_inside_the_callers_transaction_rolls_back(warehouse, tmp_path):
    numbers = [2125550100 + i for i in range(10)]
    with warehouse.connect() as con:
        import_dnc_file(con, national_file(tmp_path, "a.txt", numbers), source="national")
    with pytest.raises(DncUnavailable), warehouse.transaction() as con:
        add_numbers(con, [LISTED])
        import_dnc_file(con, national_file(tmp_path, "b.txt", numbers[:1]), source="national")
    with warehouse.connect() as con:
        assert active_count(con, "national") == 10
        assert active_count(con, "internal") == 0


def test_problems_missing_stale_and_fresh(warehouse, tmp_path):
    with warehouse.connect() as con:
        all_sources = Campaign(name="spring").dnc_sources
        assert dnc_problems(con, sources=all_sources, require_national=True, now=NOW) == [
            "the national DNC list has never been loaded"
        ]
        # Lists nobody has added to yet are empty, not broken: ad-hoc campaigns on a fresh install work.
        assert dnc_problems(con, sources=all_sources, require_national=False, now=NOW) == []
        import_dnc_file(
            con, national_file(tmp_path, "n.txt", [4155550134]), source="national", snapshot_date=date(2026, 2, 1)
        )
        stale = dnc_problems(con, sources=[], require_national=True, now=NOW)
        assert stale == ["the national DNC snapshot is 47 days old (as of 2026-02-01; limit 31 days)"]
        assert "555" not in stale[0]
        assert dnc_problems(con, sources=["national"], require_national=False, now=NOW) == []
        assert dnc_problems(con, sources=[], require_national=True, now=datetime(2026, 3, 4)) == []
        # An add change list brings the list up to date; a delete list alone does not.
        import_dnc_file(
            con,
            national_file(tmp_path, "del.txt", [4155550134]),
            source="national",
            kind="delete",
            snapshot_date=date(2026, 3, 15),
        )
        assert dnc_problems(con, sources=[], require_national=True, now=NOW) == stale
        import_dnc_file(
            con,
            national_file(tmp_path, "add.txt", [4155550135]),
            source="national",
            kind="add",
            snapshot_date=date(2026, 3, 15),
        )
        assert dnc_problems(con, sources=[], require_national=True, now=NOW) == []


def test_problem_when_the_latest_load_is_empty(warehouse):
    with warehouse.connect() as con:
        con.execute(
            "INSERT INTO dnc_loads (load_id, load_seq, source, kind, rows_loaded, rows_rejected, loaded_at)"
            " SELECT 'legacy', coalesce(max(load_seq), 0) + 1, 'internal', 'full', 0, 0, now() FROM dnc_loads"
        )
        assert dnc_problems(con, sources=["internal"], require_national=False, now=NOW) == [
            "the latest load of the internal DNC list (legacy) has zero rows"
        ]


def test_snapshot_date_defaults_to_the_file_date_not_today(warehouse, tmp_path):
    import os

    path = national_file(tmp_path, "old.txt", [4155550134])
    old = datetime(2025, 12, 1, 12).timestamp()
    os.utime(path, (old, old))
    with warehouse.connect() as con:
        assert import_dnc_file(con, path, source="national").snapshot_date == date(2025, 12, 1)


def test_consent_policy(warehouse):
    frame = pl.concat(
        [
            contacts(OTHER),
            contacts(OTHER, consent="no"),
            contacts(OTHER, consent=None),
            contacts(OTHER, date_=None),
            contacts(OTHER, source="  "),
            contacts(OTHER, consent=" YES "),
        ]
    )
    with warehouse.connect() as con:
        add_numbers(con, [OTHER])
        required = scrub(con, frame, campaign=Campaign(name="spring", require_consent=True))["reasons"].to_list()
        optional = scrub(con, frame, campaign=Campaign(name="spring"))["reasons"].to_list()
    no = ["dnc:internal", "no_consent"]
    revoked = ["dnc:internal", "consent_revoked"]
    assert required == [["dnc:internal"], revoked, no, no, no, ["dnc:internal"]]
    # an explicit no is an opt-out: suppressed whatever the campaign requires
    assert optional == [["dnc:internal"], revoked, *[["dnc:internal"]] * 4]


def test_invalid_or_missing_contact_phone_is_not_matched(warehouse):
    with warehouse.connect() as con:
        add_numbers(con, [LISTED])
        out = scrub(con, contacts("garbage", LISTED).vstack(contacts(LISTED).clear(1)), campaign=Campaign(name="x"))
    assert out["reasons"].to_list() == [[], ["dnc:internal"], []]


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        ("(415) 555-0134\n212-555-0199\n", "utf-8"),
        ("Téléphone,Nom\n415 555 0134,Zoë\n", "utf-16"),
        ("tel,name\n4155550134,Zoë €\n", "cp1252"),
    ],
)
def test_internal_files_without_header_or_in_other_encodings(warehouse, tmp_path, content, encoding):
    path = tmp_path / "list.csv"
    path.write_bytes(content.encode(encoding))
    with warehouse.connect() as con:
        assert import_dnc_file(con, path, source="internal").rows_rejected == 0
        assert reasons_for(con, [LISTED]) == [["dnc:internal"]]


def test_change_lists_alone_are_not_a_national_list(warehouse, tmp_path):
    with warehouse.connect() as con:
        import_dnc_file(
            con,
            national_file(tmp_path, "add.txt", [4155550134]),
            source="national",
            kind="add",
            snapshot_date=date(2026, 3, 19),
        )
        assert dnc_problems(con, sources=[], require_national=True, now=NOW) == [
            "the national DNC list has no full snapshot (change lists alone are not a list)"
        ]
        assert reasons_for(con, [LISTED]) == [["dnc:national"]]


def test_other_numbers_are_scrubbed_number_by_number(warehouse):
    frame = pl.concat(
        [contacts(OTHER), contacts(OTHER), contacts(LISTED), contacts(OTHER)], how="vertical"
    ).with_columns(
        pl.Series(
            "other_phones_e164",
            [[LISTED, "+13035550100"], None, ["+13035550100"], [LISTED]],
            dtype=pl.List(pl.Utf8),
        )
    )
    with warehouse.connect() as con:
        add_numbers(con, [LISTED], source="internal")
        out = scrub(con, frame, campaign=Campaign(name="spring"))
    # a listed other number is taken off the contact, who stays callable on an unlisted phone
    assert out["reasons"].to_list() == [[], [], ["dnc:internal"], []]
    assert out["other_phones_e164"].to_list() == [["+13035550100"], None, ["+13035550100"], None]
    assert out["other_phones_suppressed"].to_list() == [[LISTED], None, None, [LISTED]]


def test_the_upload_scrub_leaves_required_consent_to_the_audience(warehouse):
    frame = pl.concat([contacts(OTHER, consent=None), contacts(OTHER, consent="no"), contacts(LISTED, consent=None)])
    with warehouse.connect() as con:
        add_numbers(con, [LISTED])
        campaign = Campaign(name="spring", require_consent=True)
        at_upload = scrub(con, frame, campaign=campaign, upload=True)["reasons"].to_list()
        at_build = scrub(con, frame, campaign=campaign)["reasons"].to_list()
    # DNC and opt-outs are suppressed at upload; the missing consent is the audience's reason
    assert at_upload == [[], ["consent_revoked"], ["dnc:internal"]]
    assert at_build == [["no_consent"], ["consent_revoked"], ["dnc:internal", "no_consent"]]

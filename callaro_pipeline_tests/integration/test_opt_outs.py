"""Opt-outs are immediate and never lost; national registry files, coverage and age; safe campaign defaults;
one campaign link per contact under concurrent imports (compliance issue 12, field defects issue 16)."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml
from test_audiences import CONSENTED, NEW_YORK, load_dnc_lists
from test_contact_book import ANN, BOB, CAROL, NOW, merge, released_rows

from callaro_pipeline.core.config import Campaign, list_campaigns, load_campaign
from callaro_pipeline.core.dnc_files import DncFileRefused
from callaro_pipeline.core.duplicates import apply_duplicate_policy
from callaro_pipeline.core.errors import DncUnavailable
from callaro_pipeline.core.validation import validate_contacts
from callaro_pipeline.storage import dnc_loads
from callaro_pipeline.storage.audiences import build_audience, export_audience
from callaro_pipeline.storage.contact_book import remove_contacts, update_contacts
from callaro_pipeline.storage.contact_book_merge import merge_upload_into_book
from callaro_pipeline.storage.dnc_loads import import_dnc_file
from callaro_pipeline.storage.suppression import scrub
from callaro_pipeline.storage.warehouse import Warehouse


@pytest.fixture
def warehouse(tmp_path):
    return Warehouse(home=str(tmp_path / "home"))


def audience(con, campaign: str = "spring") -> list[str]:
    rows = con.execute("SELECT phone_e164 FROM campaign_audiences WHERE campaign = ? ORDER BY 1", [campaign])
    return [phone for (phone,) in rows.fetchall()]


def callable_at(con, ts: datetime, campaign: str = "spring") -> list[str]:
    rows = con.execute("SELECT phone_e164 FROM callable_contacts(?, ?) ORDER BY 1", [campaign, ts]).fetchall()
    return [phone for (phone,) in rows]


def built(con, campaign: Campaign, *rows: dict, now: datetime = NOW) -> None:
    merge(con, "u1", campaign.name, *rows)
    load_dnc_lists(con, campaign)
    build_audience(con, campaign, now=now)


def registry_file(directory: Path, name: str, lines: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


# --- 1. opt-outs are out of every read path at once ---------------------------------------------------------


def test_a_number_added_to_dnc_is_out_of_every_read_path_without_a_rebuild(warehouse, tmp_path):
    campaign = Campaign(name="spring")
    with warehouse.transaction() as con:
        built(con, campaign, {"phone_e164": ANN, **NEW_YORK}, {"phone_e164": BOB, **NEW_YORK})
        assert audience(con) == [ANN, BOB] and callable_at(con, NOW) == [ANN, BOB]
        # a rebuild that never comes (killed, failed): the read paths decide on the live list
        dnc_loads.add_numbers(con, [BOB], source="internal", reason="asked on call")
        assert audience(con) == [ANN]
        assert callable_at(con, NOW) == [ANN]
        dnc_loads.add_numbers(con, [ANN], source="campaign:autumn")  # another campaign's list: no effect
        assert audience(con) == [ANN]
        assert export_audience(con, "spring", tmp_path / "out.csv") == 1
    exported = pl.read_csv(tmp_path / "out.csv", infer_schema=False)
    assert exported["phone_e164"].to_list() == [ANN]


def test_a_removed_contact_or_a_revoked_consent_is_out_without_a_rebuild(warehouse):
    campaign = Campaign(name="spring")
    with warehouse.transaction() as con:
        built(con, campaign, *({"phone_e164": p, **NEW_YORK, **CONSENTED} for p in (ANN, BOB, CAROL)))
        # `contacts remove --yes` killed during its rebuild left removed people exported (issue 16)
        remove_contacts(con, [("phone_e164", "=", BOB)], now=NOW, changed_by="alice")
        update_contacts(con, [("phone_e164", "=", CAROL)], {"consent": "no"}, now=NOW, changed_by="alice")
        assert audience(con) == [ANN]
        assert callable_at(con, NOW) == [ANN]


def test_a_revoked_consent_is_suppressed_in_a_campaign_that_does_not_require_consent(warehouse):
    with warehouse.transaction() as con:
        built(con, Campaign(name="spring"), {"phone_e164": ANN, **NEW_YORK, "consent": "no"})
        assert audience(con) == []


def test_dnc_add_command_rebuilds_the_affected_audiences_before_returning(callaro_env, capsys):
    import os

    from callaro_pipeline.cli.app import main

    config = Path(os.environ["CALLARO_CONFIG"]) / "campaigns"
    (config / "spring.yaml").write_text(yaml.safe_dump({"name": "spring"}), encoding="utf-8")
    warehouse = Warehouse()
    with warehouse.transaction() as con:
        merge(con, "u1", "spring", {"phone_e164": ANN, **NEW_YORK}, {"phone_e164": BOB, **NEW_YORK})
        build_audience(con, load_campaign("spring"), now=datetime.now(UTC))
    assert main(["dnc", "add", "(415) 555-0102", "--reason", "asked"]) == 0
    assert "audiences rebuilt: spring" in capsys.readouterr().out
    with warehouse.connect() as con:
        (latest,) = con.execute("SELECT max(build_id) FROM audience_builds").fetchone()
        frozen = con.execute("SELECT phone_e164 FROM audience_members WHERE build_id = ?", [latest]).fetchall()
    assert latest == "spring-000002" and frozen == [(ANN,)]


# --- 2. consent revoked by a later upload is never lost -------------------------------------------------------


def validated(rows: dict[str, list], today: date = date(2026, 3, 2)):
    """Mapped rows (every standard field, as apply_mapping gives them) validated as of `today`."""
    from callaro_pipeline.core.schema import STANDARD_FIELDS

    height = len(next(iter(rows.values())))
    mapped = pl.DataFrame(rows, schema={name: pl.Utf8 for name in rows}).with_columns(
        pl.int_range(2, 2 + height, dtype=pl.Int64).alias("row_number"),
        *(pl.lit(None, pl.Utf8).alias(name) for name in STANDARD_FIELDS if name not in rows),
        pl.lit("{}").alias("custom_fields"),
    )
    return validate_contacts(mapped, source_columns={}, registry={}, today=today)


@pytest.mark.parametrize("policy", ["suppress", "merge", "split"])
def test_a_later_no_in_the_same_file_revokes_whatever_the_policy(policy):
    result = validated(
        {
            "phone": ["4155550101", "415-555-0101", "4155550102"],
            "first_name": ["Ann", "Ann", "Bob"],
            "consent": ["yes", "opt-out", "yes"],
            "consent_date": ["2026-01-10", "2026-02-01", "2026-01-10"],
            "consent_source": ["webform", "call", "webform"],
        }
    )
    kept = apply_duplicate_policy(result.valid, policy=policy).kept
    ann = kept.filter(pl.col("phone_e164") == ANN).row(0, named=True)
    assert (ann["consent"], ann["consent_date"], ann["consent_source"]) == ("no", "2026-02-01", "call")


def test_a_no_for_a_contact_already_in_the_campaign_is_kept_to_revoke_not_rejected_as_duplicate():
    valid = validated({"phone": ["4155550101", "4155550102"], "first_name": ["Ann", "Bob"], "consent": ["no", "yes"]})
    existing = pl.DataFrame({"phone_e164": [ANN, BOB], "external_id": [None, None], "upload_id": ["u1", "u1"]})
    result = apply_duplicate_policy(valid.valid, policy="suppress", existing=existing)
    assert result.kept["phone_e164"].to_list() == [ANN]
    assert result.problems["value"].to_list() == [BOB]


def test_a_later_upload_revokes_in_the_book_even_when_its_row_is_suppressed(warehouse):
    campaign = Campaign(name="spring")
    with warehouse.transaction() as con:
        built(con, campaign, {"phone_e164": ANN, **NEW_YORK, **CONSENTED}, {"phone_e164": BOB, **NEW_YORK})
        merge(con, "u2", "autumn")  # registers the upload
        # the upload's validated rows: ANN says no (suppressed, so not released); BOB's empty consent is unknown
        con.execute(
            "INSERT INTO validated_contacts (upload_id, row_number, phone_e164, consent, consent_date, "
            "consent_source, timezone_source) VALUES ('u2', 2, ?, 'no', '2026-02-20', 'call', 'phone')",
            [ANN],
        )
        counts = merge_upload_into_book(
            con,
            upload_id="u2",
            campaign="autumn",
            contacts=released_rows({"phone_e164": BOB, "consent": "unknown"}),
            now=NOW,
        )
        assert counts["consent_revoked"] == 1
        book = dict(con.execute("SELECT phone_e164, consent FROM contacts").fetchall())
        assert book == {ANN: "no", BOB: "unknown"}
        assert audience(con) == [BOB]
        # an older "yes" does not undo the opt-out; a consent dated after it does
        merge(con, "u3", "autumn", {"phone_e164": ANN, **CONSENTED})
        assert con.execute("SELECT consent FROM contacts WHERE phone_e164 = ?", [ANN]).fetchone() == ("no",)
        merge(con, "u4", "autumn", {"phone_e164": ANN, **CONSENTED, "consent_date": "2026-02-25"})
        assert con.execute("SELECT consent FROM contacts WHERE phone_e164 = ?", [ANN]).fetchone() == ("yes",)


@pytest.mark.parametrize("given", ["n/a", "unknown", "2026-02-30", "sometime", "2026-03-03", "12/31/2027"])
def test_consent_dates_that_are_not_real_past_dates_are_invalid_consent(given):
    result = validated({"phone": ["4155550101"], "first_name": ["Ann"], "consent": ["yes"], "consent_date": [given]})
    assert result.valid.is_empty()
    assert result.problems.select("field", "code").rows() == [("consent_date", "invalid_consent")]


def test_valid_consent_dates_are_normalized_and_an_opt_out_needs_no_date():
    result = validated(
        {
            "phone": ["4155550101", "4155550102", "4155550103"],
            "first_name": ["Ann", "Bob", "Cy"],
            "consent": ["yes", "no", "yes"],
            "consent_date": ["01/10/2026", "n/a", "2026-01-10T09:30:00Z"],
        }
    )
    assert result.problems.is_empty()
    assert result.valid["consent_date"].to_list() == ["2026-01-10", None, "2026-01-10"]


def test_scrub_refuses_consent_dates_in_the_future_at_build_time(warehouse):
    frame = pl.DataFrame(
        {"phone_e164": [ANN, BOB], "consent": ["yes", "yes"], "consent_date": ["2026-03-01", "2026-03-05"]}
    ).with_columns(pl.lit("web").alias("consent_source"))
    with warehouse.connect() as con:
        reasons = scrub(con, frame, campaign=Campaign(name="s", require_consent=True), now=NOW)["reasons"]
    assert reasons.to_list() == [[], ["no_consent"]]


# --- 3. national registry files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        ["415,5550134", "415,5550135", "212,5550100"],
        ["areacode,number", "415,5550134", "415,5550135", "", "212,5550100"],
        ["phone_number", "4155550134", "4155550135", "2125550100"],
    ],
)
def test_registry_layouts_are_read(warehouse, tmp_path, lines):
    with warehouse.connect() as con:
        result = import_dnc_file(con, registry_file(tmp_path, "n.txt", lines), source="national")
        assert (result.rows_loaded, result.rows_rejected) == (3, 0)
        reasons = scrub(
            con,
            pl.DataFrame({"phone_e164": ["+14155550134", "+12125550100", "+14155550136"]}),
            campaign=Campaign(name="s"),
        )
        assert reasons["reasons"].to_list() == [["dnc:national"], ["dnc:national"], []]
        codes = con.execute("SELECT area_code, rows_loaded FROM dnc_load_area_codes ORDER BY 1").fetchall()
        assert codes == [(212, 1), (415, 2)]


def test_a_file_with_unreadable_lines_is_refused_whole_and_the_previous_snapshot_stays(warehouse, tmp_path):
    with warehouse.connect() as con:
        import_dnc_file(con, registry_file(tmp_path, "a.txt", ["415,5550134"]), source="national")
        bad = registry_file(tmp_path, "b.txt", ["415,5550134", "415;5550135", "", "12345", "415,5550136", "x"])
        with pytest.raises(DncFileRefused, match=r"3 line\(s\) cannot be read .*first: line 2, 4, 6") as refused:
            import_dnc_file(con, bad, source="national")
        assert refused.value.exit_code == 2
        assert "5550" not in str(refused.value)  # no phone numbers in the message
        assert con.execute("SELECT count(*) FROM dnc_loads").fetchone() == (1,)


def test_cli_refuses_an_unreadable_registry_file_with_exit_2_and_one_line(callaro_env, tmp_path, capsys):
    from callaro_pipeline.cli.app import main

    path = registry_file(tmp_path, "n.txt", ["415,5550134", "garbage"])
    assert main(["dnc", "import", str(path), "--source", "national"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 line(s)" in err and "line 2" in err


def test_a_campaign_requiring_the_national_list_never_calls_an_area_code_no_snapshot_covers(warehouse, tmp_path):
    strict = Campaign(name="spring", require_national_dnc=True)
    new_york = "+12125550150"
    with warehouse.transaction() as con:
        merge(con, "u1", "spring", {"phone_e164": ANN, **NEW_YORK}, {"phone_e164": new_york, **NEW_YORK})
        load_dnc_lists(con, Campaign(name="spring"))
        import_dnc_file(
            con, registry_file(tmp_path, "415.txt", ["4155550199"]), source="national", snapshot_date=NOW.date()
        )
        build = build_audience(con, strict, now=NOW)
        assert callable_at(con, NOW) == [ANN]
        assert build.detail["suppressed_by_reason"] == {"dnc:national_not_covered": 1}


def test_calls_stop_when_the_national_snapshot_turns_31_days_old(warehouse, tmp_path):
    strict = Campaign(name="spring", require_national_dnc=True)
    snapshot = date(2026, 2, 5)  # 25 days before NOW (Mon 2026-03-02): the build is allowed
    with warehouse.transaction() as con:
        merge(con, "u1", "spring", {"phone_e164": ANN, **NEW_YORK})
        load_dnc_lists(con, Campaign(name="spring"))
        import_dnc_file(
            con, registry_file(tmp_path, "415.txt", ["4155550199"]), source="national", snapshot_date=snapshot
        )
        build = build_audience(con, strict, now=NOW)
        assert build.detail["national_not_after"] == "2026-03-08T00:00:00+00:00"
        (last_close,) = con.execute(
            "SELECT max(closes_utc) FROM audience_build_windows WHERE build_id = ?", [build.build_id]
        ).fetchone()
        assert last_close <= datetime(2026, 3, 8, tzinfo=UTC)
        # Wed 2026-03-04 10:00 New York: snapshot age 27 days, callable
        assert callable_at(con, datetime(2026, 3, 4, 15, 0, tzinfo=UTC)) == [ANN]
        # Fri 2026-03-13 10:00 New York: snapshot age 36 days; Mon 2026-03-16 (age 39): never
        assert callable_at(con, datetime(2026, 3, 13, 15, 0, tzinfo=UTC)) == []
        assert callable_at(con, snapshot_age(snapshot, 38, hour=15)) == []


def snapshot_age(snapshot: date, days: int, *, hour: int) -> datetime:
    moment = datetime(snapshot.year, snapshot.month, snapshot.day, hour, tzinfo=UTC) + timedelta(days=days)
    return moment


def test_a_truncated_snapshot_is_refused_naming_the_area_codes_unless_confirmed(warehouse, tmp_path):
    full = [f"212555{i:04d}" for i in range(100)] + [f"415555{i:04d}" for i in range(100)]
    truncated = full[: int(len(full) * 0.96)]  # the file cut at 96% of its lines: 415 loses 8 of 100
    with warehouse.connect() as con:
        import_dnc_file(con, registry_file(tmp_path, "a.txt", full), source="national")
        with pytest.raises(DncUnavailable, match=r"1 area code\(s\): 415 \(100 -> 92") as refused:
            import_dnc_file(con, registry_file(tmp_path, "b.txt", truncated), source="national")
        assert "212" not in str(refused.value) and "--allow-shrink" in str(refused.value)
        assert con.execute("SELECT count(*) FROM dnc WHERE source = 'national' AND active").fetchone() == (200,)
        import_dnc_file(con, registry_file(tmp_path, "b.txt", truncated), source="national", allow_shrink=True)
        assert con.execute("SELECT count(*) FROM dnc WHERE source = 'national' AND active").fetchone() == (192,)


# --- 4. safe campaign defaults -------------------------------------------------------------------------------


@pytest.mark.safe_defaults
def test_a_new_campaign_gets_safe_built_in_defaults_saved_under_home_not_config(callaro_env):
    import os

    config = Path(os.environ["CALLARO_CONFIG"])
    before = sorted(p.name for p in (config / "campaigns").iterdir())
    campaign = load_campaign("typo", create=True)
    assert campaign.require_national_dnc and campaign.require_consent and campaign.ai_voice
    assert sorted(p.name for p in (config / "campaigns").iterdir()) == before
    assert (callaro_env / "campaigns" / "typo.yaml").is_file()
    assert load_campaign("typo").require_national_dnc
    assert "typo" in list_campaigns()


def test_the_compliance_owners_defaults_apply_and_are_not_a_campaign(callaro_env):
    import os

    defaults = Path(os.environ["CALLARO_CONFIG"]) / "campaigns" / "_defaults.yaml"
    defaults.write_text(yaml.safe_dump({"require_national_dnc": False, "ai_voice": True, "window": {"end": "19:00"}}))
    campaign = load_campaign("typo", create=True)
    assert not campaign.require_national_dnc
    assert campaign.require_consent  # an AI voice needs prior express consent
    assert campaign.window.end == "19:00"
    assert "_defaults" not in list_campaigns()


@pytest.mark.safe_defaults
def test_an_import_into_a_new_campaign_imports_and_says_why_nobody_is_callable(callaro_env, tmp_path):
    from conftest import write_csv

    from callaro_pipeline.cli.runner import ImportRequest, run_import

    upload = write_csv(tmp_path / "c.csv", ["First Name", "Phone"], [["Ann", "(415) 555-0101"]])
    summary = run_import(ImportRequest(file=upload, campaign="typo"))
    # imported (exit 0): the unconsented contact is in the book and the campaign (consent is the audience's
    # criterion, not the upload's), and the audience says why nobody is callable yet
    assert summary["status"] == "imported" and summary["suppressed"] == 0 and summary["imported"] == 1
    assert summary["audience"]["status"] == "not_built"
    assert "national DNC list has never been loaded" in summary["audience"]["reason"]
    warehouse = Warehouse()
    with warehouse.connect() as con:
        assert con.execute("SELECT phone_e164 FROM contacts").fetchall() == [("+14155550101",)]
        assert con.execute("SELECT count(*) FROM campaign_contacts WHERE campaign = 'typo'").fetchone() == (1,)
    # once the national list is loaded the audience is built, and excludes the contact for want of consent
    national = registry_file(tmp_path / "dnc", "national.txt", ["4155550199"])
    with warehouse.transaction() as con:
        import_dnc_file(con, national, source="national", snapshot_date=datetime.now(UTC).date())
        build = build_audience(con, load_campaign("typo"), now=datetime.now(UTC))
        assert build.members == 0 and build.detail["suppressed_by_reason"] == {"no_consent": 1}
        assert audience(con, "typo") == []
    from callaro_pipeline.core.audiences import audience_status

    assert "no_consent 1" in audience_status(build)["reason"]


# --- 5. one campaign link per contact under concurrent imports -------------------------------------------------


def _merge_in_process(home: str, upload_id: str, phones: list[str], barrier) -> None:
    warehouse = Warehouse(home=home)
    barrier.wait()
    with warehouse.transaction() as con:
        merge_upload_into_book(
            con,
            upload_id=upload_id,
            campaign="spring",
            contacts=released_rows(*({"phone_e164": p} for p in phones)),
            now=NOW,
        )


def test_two_concurrent_imports_into_one_campaign_link_each_contact_once(warehouse):
    with warehouse.connect():
        pass  # the schema exists before the writers start
    shared = [f"+1415555{i:04d}" for i in range(200)]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_merge_in_process, args=(warehouse.home, upload, phones, barrier))
        for upload, phones in (("u1", [*shared, "+12125550101"]), ("u2", [*shared, "+12125550102"]))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with warehouse.connect() as con:
        links = con.execute("SELECT count(*), count(DISTINCT contact_id) FROM campaign_contacts").fetchone()
    assert links == (202, 202)


# --- 6. every audience row records why it is callable --------------------------------------------------------


def test_every_audience_row_records_snapshot_consent_and_zone_decision(warehouse, tmp_path):
    strict = Campaign(name="spring", require_national_dnc=True, require_consent=True)
    with warehouse.transaction() as con:
        merge(con, "u1", "spring", {"phone_e164": ANN, **NEW_YORK, **CONSENTED})
        load_dnc_lists(con, Campaign(name="spring"))
        load = import_dnc_file(
            con, registry_file(tmp_path, "415.txt", ["4155550199"]), source="national", snapshot_date=NOW.date()
        )
        build_audience(con, strict, now=NOW)
        # (campaign_audiences reads at the real now(), when this 2026-03-02 snapshot is long too old to call)
        [row] = con.execute("SELECT * FROM callable_contacts('spring', ?)", [NOW]).pl().rows(named=True)
    snapshot = json.loads(row["dnc_snapshot"])
    assert snapshot["national"]["latest_load_id"] == load.load_id
    assert snapshot["national"]["snapshot_date"] == NOW.date().isoformat()
    assert json.loads(row["consent_evidence"]) == CONSENTED
    assert (row["timezone"], row["timezone_source"], row["timezone_candidates"]) == (
        "America/New_York",
        "explicit",
        ["America/New_York"],
    )


def test_windows_exports_get_the_live_members_and_the_national_cut(warehouse, tmp_path):
    from callaro_pipeline.core import windows
    from callaro_pipeline.core.audiences import cut_intervals
    from callaro_pipeline.storage.audiences import callable_members

    strict = Campaign(name="spring", require_national_dnc=True)
    snapshot = date(2026, 2, 5)
    with warehouse.transaction() as con:
        merge(con, "u1", "spring", {"phone_e164": ANN, **NEW_YORK}, {"phone_e164": BOB, **NEW_YORK})
        load_dnc_lists(con, Campaign(name="spring"))
        import_dnc_file(
            con, registry_file(tmp_path, "415.txt", ["4155550199"]), source="national", snapshot_date=snapshot
        )
        build_audience(con, strict, now=NOW)
        dnc_loads.add_numbers(con, [BOB], source="internal")
        members, not_after = callable_members(con, "spring")
    assert not_after == datetime(2026, 3, 8, tzinfo=UTC)
    # campaign_audiences reads at the real now(): long after the cut, nobody is listed for this old snapshot
    assert members.is_empty()
    intervals = windows.call_windows_for_keys(["America/New_York;"], strict.window, NOW, days=30)
    cut = cut_intervals(intervals, not_after)
    assert not cut.is_empty() and cut["closes_utc"].max() <= not_after
    assert cut.filter(pl.col("opens_utc") >= snapshot_age(snapshot, 38, hour=0)).is_empty()


# --- 6. other numbers and required consent, decided live -------------------------------------------------------

ALTERNATE = "+12125550177"
OTHER_ALTERNATE = "+12125550178"


def test_no_export_ever_offers_a_listed_other_number(warehouse, tmp_path):
    campaign = Campaign(name="spring")
    with warehouse.transaction() as con:
        built(con, campaign, {"phone_e164": ANN, **NEW_YORK, "other_phones_e164": [ALTERNATE, OTHER_ALTERNATE]})
        export_audience(con, "spring", tmp_path / "before.parquet")
        # listed after the build, rebuild never run: the contact stays callable on its phone, the number is gone
        dnc_loads.add_numbers(con, [ALTERNATE], source="internal", reason="asked on call")
        dnc_loads.add_numbers(con, [OTHER_ALTERNATE], source="campaign:autumn")  # another campaign's list
        assert audience(con) == [ANN]
        assert export_audience(con, "spring", tmp_path / "after.parquet") == 1
        export_audience(con, "spring", tmp_path / "after.csv")
    before = pl.read_parquet(tmp_path / "before.parquet")
    after = pl.read_parquet(tmp_path / "after.parquet")
    assert before["other_phones_e164"].to_list() == [[ALTERNATE, OTHER_ALTERNATE]]
    assert after["other_phones_e164"].to_list() == [[OTHER_ALTERNATE]]
    assert ALTERNATE not in (tmp_path / "after.csv").read_text(encoding="utf-8")


def test_a_contact_whose_phone_is_listed_is_out_with_every_number(warehouse):
    campaign = Campaign(name="spring")
    with warehouse.transaction() as con:
        built(con, campaign, {"phone_e164": ANN, **NEW_YORK, "other_phones_e164": [ALTERNATE]})
        dnc_loads.add_numbers(con, [ANN], source="internal")
        assert audience(con) == []
        assert con.execute("SELECT count(*) FROM campaign_audiences").fetchone() == (0,)


def test_required_consent_is_decided_live_in_the_audience(warehouse):
    strict, lax = Campaign(name="spring", require_consent=True), Campaign(name="autumn")
    with warehouse.transaction() as con:
        rows = [{"phone_e164": phone, **NEW_YORK, **CONSENTED} for phone in (ANN, BOB, CAROL)]
        merge(con, "u1", "spring", *rows)
        merge(con, "u2", "autumn", *rows)
        for campaign in (strict, lax):
            load_dnc_lists(con, campaign)
            build_audience(con, campaign, now=NOW)
        assert audience(con, "spring") == audience(con, "autumn") == sorted([ANN, BOB, CAROL])
        # consent evidence lost after the build (no rebuild): out where consent is required, in elsewhere
        update_contacts(con, [("phone_e164", "=", BOB)], {"consent": "unknown"}, now=NOW, changed_by="alice")
        update_contacts(con, [("phone_e164", "=", CAROL)], {"consent_source": ""}, now=NOW, changed_by="alice")
        assert audience(con, "spring") == [ANN]
        assert callable_at(con, NOW, "spring") == [ANN]
        assert audience(con, "autumn") == sorted([ANN, BOB, CAROL])
        reasons = con.execute("SELECT DISTINCT campaign, reason FROM audience_live_blocked ORDER BY 1").fetchall()
        assert reasons == [("spring", "no_consent")]

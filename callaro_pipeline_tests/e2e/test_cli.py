"""Every command of the contract end to end through `callaro_pipeline.cli.main`, in one temporary installation.

Module-scoped fixtures share the installation (Dagster runs are the expensive part): each fixture imports what
its tests need into its own campaign, so the tests do not depend on the order they run in. The segment and
`demo` flow runs in a subprocess as a fresh installation does (CALLARO_HOME and CALLARO_CONFIG of its own, the
project's dbt project): it must leave nothing that `git status` would show.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import polars as pl
import pytest
import yaml

from callaro_pipeline.core.project_paths import PROJECT_ROOT
from callaro_pipeline_tests.conftest import cli, open_lake, write_csv


def imported(*args: object) -> dict:
    """`callaro import ... --json` that must succeed; returns the summary."""
    ran = cli("import", *args, "--json")
    summary = ran.json()
    assert ran.code == 0 and summary["status"] == "imported", (summary, ran.err)
    return summary


def query(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = open_lake(home)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def scalar(home: Path, sql: str, params: list | None = None):
    return query(home, sql, params)[0][0]


def write_campaign(config: Path, name: str, **settings: object) -> None:
    (config / "campaigns" / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **settings}), encoding="utf-8")


def home_files(home: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(home)): (p.stat().st_size, p.stat().st_mtime_ns) for p in home.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cli")
    home, config, files = root / "home", root / "config", root / "files"
    (home / "dagster").mkdir(parents=True)
    files.mkdir()
    shutil.copytree(PROJECT_ROOT / "config", config)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CALLARO_HOME", str(home))
        mp.setenv("CALLARO_CONFIG", str(config))
        mp.setenv("DAGSTER_HOME", str(home / "dagster"))
        yield SimpleNamespace(root=root, home=home, config=config, files=files)


# --- import, preview, mapping, drift ------------------------------------------------------------------------

VENDOR_HEADER = ["Customer ID", "First Name", "Last Name", "Phone Number", "E-mail", "State", "Lead Source", "Plan"]
VENDOR_ROWS = [
    [f"V{i}", f"Name{i}", "Vendor", f"(303) 555-01{i:02d}", f"v{i}@example.com", "CO", "webinar", "enterprise"]
    for i in range(11)
]
MAPPING = {
    "columns": {
        "Customer ID": "external_id",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Phone Number": "phone",
        "E-mail": "email",
        "State": "state",
        "Lead Source": "lead_source",
        "Plan": "custom.plan_tier",
    }
}


@pytest.fixture(scope="module")
def acme(env):
    """Campaign `acme`: a first vendor file with a mapping file (custom field, a spreadsheet-damaged phone),
    a preview of the next file, then that file without --mapping (remembered mapping, column drift)."""
    f = env.files
    mapping = f / "acme_mapping.yaml"
    mapping.write_text(yaml.safe_dump(MAPPING), encoding="utf-8")
    damaged = ["V99", "Dee", "Damaged", "4.15556E+09", "dee@example.com", "CO", "webinar", "pro"]
    first_file = write_csv(
        f / "acme1.csv", [*VENDOR_HEADER, "Notes"], [[*r, "note"] for r in VENDOR_ROWS] + [[*damaged, ""]]
    )
    first = imported(first_file, "--campaign", "acme", "--mapping", mapping)

    second_rows = [
        ["W1", "Wanda", "Two", "(303) 555-0150", "wanda@example.com", "CO", "referral", "starter", "blue"],
        ["W2", "Walt", "Two", "(303) 555-0151", "walt@example.com", "CO", "referral", "pro", "red"],
    ]
    second_file = write_csv(f / "acme2.csv", [*VENDOR_HEADER, "Widget Color"], second_rows)
    before = home_files(env.home)
    uploads_before = scalar(env.home, "SELECT count(*) FROM uploads")
    preview = cli("preview", second_file, "--campaign", "acme", "--rows", "5")
    preview_written = (
        home_files(env.home) != before,
        scalar(env.home, "SELECT count(*) FROM uploads") - uploads_before,
    )
    second = imported(second_file, "--campaign", "acme")
    return SimpleNamespace(first=first, second=second, preview=preview, preview_written=preview_written)


def test_import_with_mapping_file_imports_custom_fields_and_rejects_damaged_phone(env, acme) -> None:
    first = acme.first
    assert first["rows_read"] == 12 and first["imported"] == 11 and first["rejected"] == 1
    assert first["mapping"]["source"] == "file"
    assert first["mapping"]["fields"]["Plan"] == "custom.plan_tier"
    assert first["mapping"]["unmapped"] == ["Notes"]
    assert first["problems_by_code"] == {"invalid_phone": 1}
    report = pl.read_csv(first["error_report"], infer_schema_length=0)
    damaged = report.filter(pl.col("row_number") == "13").row(0, named=True)
    assert damaged["code"] == "invalid_phone" and damaged["value"] == "4.15556E+09"
    assert "re-export" in damaged["message"] and "text" in damaged["message"]
    tiers = query(
        env.home,
        "SELECT DISTINCT custom_fields->>'plan_tier' FROM contacts JOIN campaign_contacts USING (contact_id) "
        "WHERE upload_id = ?",
        [first["upload_id"]],
    )
    assert tiers == [("enterprise",)]


def test_preview_shows_mapping_drift_rows_and_problems_and_writes_nothing(acme) -> None:
    ran = acme.preview
    assert ran.code == 0, ran.err
    assert "(remembered)" in ran.out  # the campaign's last mapping
    assert "'Plan'" in ran.out and "custom.plan_tier" in ran.out
    assert "unmapped" in ran.out and "Widget Color" in ran.out
    drift = next(line for line in ran.out.splitlines() if line.startswith("drift"))
    assert "Widget Color" in drift and "Notes" in drift
    assert "+13035550150" in ran.out and "Wanda" in ran.out  # the first rows as they would be imported
    assert "would import 2" in ran.out
    assert acme.preview_written == (False, 0)


def test_preview_reports_problems(env) -> None:
    bad = write_csv(
        env.files / "preview_bad.csv",
        ["First Name", "Phone Number", "E-mail"],
        [["Ann", "(303) 555-0190", "ann@example.com"], ["Bo", "12", "not-an-email"]],
    )
    ran = cli("preview", bad, "--campaign", "never-imported")
    assert ran.code == 0, ran.err
    assert "problems" in ran.out and "invalid_phone" in ran.out and "invalid_email" in ran.out
    assert "would import 1" in ran.out
    assert not (env.config / "campaigns" / "never-imported.yaml").exists()


@pytest.mark.safe_defaults
def test_preview_of_a_brand_new_campaign_uses_the_defaults_an_import_would_give_it(callaro_env, tmp_path) -> None:
    uk = write_csv(tmp_path / "uk.csv", ["First Name", "Phone"], [["Ada", "020 7946 0958"], ["Ada", "020 7946 0958"]])
    built_in = cli("preview", uk, "--campaign", "brand-new")
    assert built_in.code == 0, built_in.err
    assert "requires national DNC list yes, consent yes" in built_in.out
    assert "would import 0" in built_in.out  # a US default region: the UK number is not valid
    # the compliance owner's defaults, as an import would apply them (region, duplicate policy)
    defaults = Path(os.environ["CALLARO_CONFIG"]) / "campaigns" / "_defaults.yaml"
    defaults.write_text(yaml.safe_dump({"default_region": "GB", "duplicates": "merge"}), encoding="utf-8")
    owners = cli("preview", uk, "--campaign", "brand-new")
    assert owners.code == 0, owners.err
    assert "duplicates merge, requires national DNC list no, consent no" in owners.out
    assert "+442079460958" in owners.out and "would import 1" in owners.out
    assert not (callaro_env / "campaigns" / "brand-new.yaml").exists()  # a preview writes nothing


def test_second_upload_uses_remembered_mapping_and_reports_drift(env, acme) -> None:
    second = acme.second
    assert second["mapping"]["source"] == "remembered"
    assert second["mapping"]["fields"]["Plan"] == "custom.plan_tier"
    assert second["column_drift"]["added"] == ["Widget Color"]
    assert second["column_drift"]["missing"] == ["Notes"]
    tiers = query(
        env.home,
        "SELECT custom_fields->>'plan_tier' FROM contacts WHERE phone_e164 IN ('+13035550150', '+13035550151') "
        "ORDER BY phone_e164",
    )
    assert tiers == [("starter",), ("pro",)]
    ran = cli("report", second["upload_id"])
    assert ran.code == 0 and "drift" in ran.out and "Widget Color" in ran.out


def test_default_region_reads_national_uk_numbers(env) -> None:
    uk = write_csv(
        env.files / "uk.csv",
        ["Name", "Phone"],
        [["Alice Smith", "020 7946 0018"], ["Bob Jones", "07911 123456"], ["Carl Doe", "0161 496 0000"]],
    )
    summary = imported(uk, "--campaign", "uk-leads", "--default-region", "GB")
    assert summary["imported"] == 3 and summary["rejected"] == 0
    rows = query(
        env.home,
        "SELECT phone_e164, timezone FROM contacts JOIN campaign_contacts USING (contact_id) WHERE campaign = 'uk-leads' "
        "ORDER BY phone_e164",
    )
    assert rows == [
        ("+441614960000", "Europe/London"),
        ("+442079460018", "Europe/London"),
        ("+447911123456", "Europe/London"),
    ]


DUPLICATE_ROWS = [
    ["Gus", "One", "(312) 555-0121", "", "gus@example.com"],
    ["Gus", "One", "312-555-0121", "Acme", ""],
    ["Hal", "Two", "(312) 555-0122", "Beta", "hal@example.com"],
    ["Hal", "Two", "312.555.0122", "Gamma", ""],
]


def test_duplicates_merge_folds_rows_into_one_contact(env) -> None:
    file = write_csv(
        env.files / "merge.csv", ["First Name", "Last Name", "Phone Number", "Company", "E-mail"], DUPLICATE_ROWS
    )
    summary = imported(file, "--campaign", "merged", "--duplicates", "merge")
    assert summary["imported"] == 2 and summary["duplicates"] == 2
    assert summary["merge_conflicts"] >= 1  # Beta vs Gamma
    gus = query(env.home, "SELECT company, email FROM contacts WHERE phone_e164 = '+13125550121'")
    assert gus == [("Acme", "gus@example.com")]  # first non-empty value of each field


def test_duplicates_split_writes_the_duplicates_file(env) -> None:
    file = write_csv(
        env.files / "split.csv", ["First Name", "Last Name", "Phone Number", "Company", "E-mail"], DUPLICATE_ROWS
    )
    summary = imported(file, "--campaign", "splitted", "--duplicates", "split")
    assert summary["imported"] == 2 and summary["duplicates"] == 2
    split = pl.read_csv(summary["duplicates_file"], infer_schema_length=0)
    assert split["row_number"].to_list() == ["3", "5"]
    assert split["company"].to_list() == ["Acme", "Gamma"]
    assert scalar(env.home, "SELECT count(*) FROM campaign_contacts WHERE campaign = 'splitted'") == 2


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("missing_column", {"columns": {"Nope": "phone", "First Name": "first_name"}}, "'Nope'"),
        (
            "two_to_one",
            {"columns": {"First Name": "first_name", "Last Name": "first_name", "Phone Number": "phone"}},
            "first_name",
        ),
        ("not_yaml", "columns: [unclosed\n  : -\n", "YAML"),
    ],
)
def test_bad_mapping_file_exits_2_with_one_line(env, name: str, content: object, fragment: str) -> None:
    mapping = env.files / f"{name}.yaml"
    mapping.write_text(content if isinstance(content, str) else yaml.safe_dump(content), encoding="utf-8")
    file = write_csv(
        env.files / "for_bad_mapping.csv",
        ["First Name", "Last Name", "Phone Number"],
        [["Ann", "Lee", "(312) 555-0177"]],
    )
    ran = cli("import", file, "--campaign", "badmap", "--mapping", mapping)
    assert ran.code == 2
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("callaro: ") and fragment in lines[0], ran.err
    assert "Traceback" not in ran.out + ran.err
    assert scalar(env.home, "SELECT count(*) FROM campaign_contacts WHERE campaign = 'badmap'") == 0
    assert scalar(env.home, "SELECT count(*) FROM contacts WHERE phone_e164 = '+13125550177'") == 0
    preview = cli("preview", file, "--campaign", "badmap", "--mapping", mapping)
    assert preview.code == 2 and fragment in preview.err


# --- DNC, national list, consent ----------------------------------------------------------------------------

CONSENTED = ["yes", "2025-01-15", "web form"]
DNC_ROWS = [
    ["Ivy", "(212) 555-0131", *CONSENTED],  # dnc add "+1 212 555 0131"
    ["Jo", "(212) 555-0132", *CONSENTED],  # dnc add "(212) 555-0132"
    ["Kai", "(212) 555-0133", *CONSENTED],  # dnc add "12125550133"
    ["Lu", "(212) 555-0134", *CONSENTED],  # dnc add "212.555.0134"
    ["Max", "(212) 555-0135", *CONSENTED],  # callable
    ["Ned", "(212) 555-0136", *CONSENTED],  # national list (bare 10 digits)
    ["Oz", "(212) 555-0137", "yes", "", ""],  # consent without date and source
    ["Pia", "(212) 555-0138", "no", "2025-01-15", "web form"],  # said no
    ["Quin", "(212) 555-0139", *CONSENTED],  # callable
]
DNC_HEADER = ["First Name", "Phone Number", "Consent", "Consent Date", "Consent Source"]
DNC_LISTED = ["+12125550131", "+12125550132", "+12125550133", "+12125550134", "+12125550136"]


@pytest.fixture(scope="module")
def dnc(env):
    f = env.files
    write_campaign(env.config, "strict", require_consent=True, require_national_dnc=True)
    contacts = write_csv(f / "dnc_targets.csv", DNC_HEADER, DNC_ROWS)
    added = [
        cli("dnc", "add", "+1 212 555 0131", "(212) 555-0132", "--reason", "asked not to be called"),
        cli("dnc", "add", "12125550133", "212.555.0134", "not a phone"),
    ]
    no_national = cli("import", contacts, "--campaign", "strict", "--json")
    national = f / "national_212.txt"
    national.write_text("2125550136\n2125550999\n3035559999\n", encoding="utf-8")
    stale = (date.today() - timedelta(days=40)).isoformat()
    loads = [cli("dnc", "import", national, "--source", "national", "--snapshot-date", stale)]
    stale_national = cli("import", contacts, "--campaign", "strict", "--json")
    loads.append(cli("dnc", "import", national, "--source", "national"))
    fresh = cli("import", contacts, "--campaign", "strict", "--json")
    plain = cli("import", contacts, "--campaign", "plain", "--json")
    return SimpleNamespace(
        added=added,
        loads=loads,
        no_national=no_national,
        stale=stale_national,
        stale_date=stale,
        fresh=fresh,
        plain=plain,
    )


def test_dnc_add_and_import_accept_any_format(env, dnc) -> None:
    for ran in dnc.added + dnc.loads:
        assert ran.code == 0, ran.err
    assert "2 numbers loaded, 0 lines rejected" in dnc.added[0].out
    assert "2 numbers loaded, 1 lines rejected" in dnc.added[1].out
    assert "3 numbers loaded" in dnc.loads[0].out
    listed = query(env.home, "SELECT DISTINCT phone_e164, source FROM dnc ORDER BY 1, 2")
    assert ("+12125550136", "national") in listed
    assert {p for p, s in listed if s == "internal"} == set(DNC_LISTED[:4])


def test_national_list_required_but_missing_imports_and_the_audience_says_why(env, dnc) -> None:
    # the import still imports (exit 0); nobody is callable until the national list is loaded and fresh
    # the stale snapshot's age is named with its date (40 days, 41 when the run crosses midnight UTC)
    stale_reason = f"days old (as of {dnc.stale_date}; limit 31 days)"
    for ran, fragment in ((dnc.no_national, "never been loaded"), (dnc.stale, stale_reason)):
        assert ran.code == 0, ran.err
        summary = ran.json()
        assert summary["status"] == "imported"
        assert summary["audience"]["status"] == "not_built" and fragment in summary["audience"]["reason"]
    assert dnc.fresh.json()["audience"]["status"] == "built"
    assert scalar(env.home, "SELECT count(*) FROM audience_builds WHERE campaign = 'strict'") == 1  # the fresh one


def test_dnc_listed_contacts_are_suppressed_and_never_in_an_audience(env, dnc) -> None:
    assert dnc.plain.code == 0, dnc.plain.err
    summary = dnc.plain.json()
    assert summary["suppressed"] == 6 and summary["imported"] == 3
    # Pia said no: an opt-out is suppressed in every campaign
    assert summary["suppressed_by_reason"] == {"dnc:internal": 4, "dnc:national": 1, "consent_revoked": 1}
    reasons = dict(
        query(
            env.home,
            "SELECT phone_e164, list_sort(reasons)::VARCHAR FROM suppressed_contacts WHERE upload_id = ?",
            [summary["upload_id"]],
        )
    )
    assert set(reasons) == {*DNC_LISTED, "+12125550138"}
    audience = {r[0] for r in query(env.home, "SELECT phone_e164 FROM campaign_audiences WHERE campaign = 'plain'")}
    assert audience == {"+12125550135", "+12125550137", "+12125550139"}
    everywhere = {r[0] for r in query(env.home, "SELECT phone_e164 FROM audience_members")}
    assert not everywhere & set(DNC_LISTED)


def test_required_consent_keeps_contacts_without_evidence_out_of_the_audience_not_the_book(env, dnc) -> None:
    assert dnc.fresh.code == 0, dnc.fresh.err
    summary = dnc.no_national.json()  # the first import of the file (the later ones find its rows in the campaign)
    # consent is the audience's criterion: Oz (consent without date and source) is imported, DNC and the "no" are not
    assert summary["imported"] == 4 and summary["suppressed"] == 5
    assert summary["suppressed_by_reason"] == {"dnc:internal": 4, "consent_revoked": 1}
    in_book = query(
        env.home,
        "SELECT c.phone_e164 FROM contacts c JOIN campaign_contacts cc USING (contact_id) "
        "WHERE cc.campaign = 'strict' AND c.phone_e164 = '+12125550137'",
    )
    assert in_book == [("+12125550137",)]
    outcome = query(
        env.home,
        "SELECT outcome, reasons FROM audience_member_versions v JOIN contacts c USING (contact_id) "
        "WHERE v.campaign = 'strict' AND v.to_build IS NULL AND c.phone_e164 = '+12125550137'",
    )
    assert outcome == [("suppressed", ["no_consent"])]
    audience = query(env.home, "SELECT phone_e164, consent_evidence FROM campaign_audiences WHERE campaign = 'strict'")
    assert {r[0] for r in audience} == {"+12125550135", "+12125550139"}
    assert all(json.loads(evidence)["consent"] == "yes" for _, evidence in audience)


# --- several phone columns, extensions -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def alternates(env):
    write_campaign(env.config, "alternates")
    listed = cli("dnc", "add", "(720) 555-0152", "--reason", "asked not to be called on the mobile")
    rows = [
        ["Ann", "(720) 555-0151", "(720) 555-0152"],  # the mobile is listed: taken off, Ann callable on her phone
        ["Bo", "(720) 555-0153", "(720) 555-0154"],
        ["Cy", "(720) 555-0152", "(720) 555-0155"],  # the phone is listed: Cy is suppressed with every number
        ["Desk A", "(720) 555-0160 ext. 1", ""],  # one switchboard number, two people
        ["Desk B", "(720) 555-0160 ext. 2", ""],
    ]
    upload = write_csv(env.files / "alternates.csv", ["First Name", "Phone Number", "Mobile Phone Number"], rows)
    summary = imported(upload, "--campaign", "alternates")
    export = cli("audience", "alternates", "--out", env.files / "alternates_audience.csv")
    return SimpleNamespace(listed=listed, summary=summary, export=export)


def test_a_listed_other_number_is_never_stored_nor_exported(env, alternates) -> None:
    assert alternates.listed.code == 0 and alternates.export.code == 0, alternates.export.err
    summary = alternates.summary
    assert summary["suppressed"] == 1 and summary["suppressed_by_reason"] == {"dnc:internal": 1}
    assert summary["other_phones_suppressed"] == 1
    book = dict(
        query(
            env.home,
            "SELECT c.first_name, c.other_phones_e164 FROM contacts c JOIN campaign_contacts cc USING (contact_id) "
            "WHERE cc.campaign = 'alternates'",
        )
    )
    assert book == {"Ann": None, "Bo": ["+17205550154"], "Desk A": None, "Desk B": None}
    exported = (env.files / "alternates_audience.csv").read_text(encoding="utf-8")
    assert "+17205550152" not in exported and "+17205550155" not in exported
    assert "+17205550154" in exported


def test_an_other_number_listed_after_the_import_leaves_every_export(env, alternates) -> None:
    assert cli("dnc", "add", "(720) 555-0154", "--reason", "asked on call").code == 0
    contacts_out, audience_out = env.files / "alternates_contacts.csv", env.files / "alternates_after.parquet"
    ran = cli("contacts", "export", "--where", "first_name = Bo", "--out", contacts_out)
    assert ran.code == 0, ran.err
    assert "+17205550153" in contacts_out.read_text(encoding="utf-8")
    assert "+17205550154" not in contacts_out.read_text(encoding="utf-8")
    assert cli("audience", "alternates", "--out", audience_out).code == 0
    bo = pl.read_parquet(audience_out).filter(pl.col("phone_e164") == "+17205550153")
    assert bo.height == 1 and bo["other_phones_e164"].to_list() == [None]


def test_two_extensions_of_one_number_are_two_contacts_through_the_cli(env, alternates) -> None:
    summary = alternates.summary
    assert summary["imported"] == 4 and summary["duplicates"] == 0, summary
    desks = query(
        env.home,
        "SELECT phone_e164, phone_extension, contact_id FROM contacts WHERE first_name LIKE 'Desk%' ORDER BY 2",
    )
    assert [(phone, ext) for phone, ext, _ in desks] == [("+17205550160", "1"), ("+17205550160", "2")]
    assert len({contact_id for *_, contact_id in desks}) == 2
    exported = pl.read_csv(env.files / "alternates_audience.csv", infer_schema=False)
    assert sorted(exported.filter(pl.col("phone_e164") == "+17205550160")["phone_extension"].to_list()) == ["1", "2"]


# --- undo ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def undone(env):
    header = ["First Name", "Phone Number"]
    first = imported(
        write_csv(env.files / "undo1.csv", header, [["Ro", "(617) 555-0141"], ["Sy", "(617) 555-0142"]]),
        "--campaign",
        "rollback",
    )
    second = imported(write_csv(env.files / "undo2.csv", header, [["Ty", "(617) 555-0143"]]), "--campaign", "rollback")
    builds_before = [
        r[0]
        for r in query(env.home, "SELECT build_id FROM audience_builds WHERE campaign = 'rollback' ORDER BY build_id")
    ]
    ran = cli("undo", second["upload_id"])
    again = cli("undo", second["upload_id"])
    return SimpleNamespace(first=first, second=second, builds_before=builds_before, ran=ran, again=again)


def members(home: Path, build_id: str) -> set[str]:
    return {r[0] for r in query(home, "SELECT phone_e164 FROM audience_members WHERE build_id = ?", [build_id])}


def test_undo_takes_the_upload_out_and_restores_the_previous_audience(env, undone) -> None:
    assert undone.ran.code == 0, undone.ran.err
    assert "undone" in undone.ran.out
    assert (
        scalar(env.home, "SELECT count(*) FROM campaign_contacts WHERE upload_id = ?", [undone.second["upload_id"]])
        == 0
    )
    assert scalar(env.home, "SELECT count(*) FROM contacts WHERE phone_e164 = '+16175550143'") == 0
    current = {r[0] for r in query(env.home, "SELECT phone_e164 FROM campaign_audiences WHERE campaign = 'rollback'")}
    first_build, second_build = undone.builds_before
    assert current == members(env.home, first_build) == {"+16175550141", "+16175550142"}
    # the build made while the upload was in stays frozen and queryable
    assert members(env.home, second_build) == current | {"+16175550143"}
    assert scalar(env.home, "SELECT status FROM uploads WHERE upload_id = ?", [undone.second["upload_id"]]) == "undone"


def test_undo_twice_changes_nothing_and_report_says_undone(undone) -> None:
    assert undone.again.code == 0 and "already undone" in undone.again.out
    ran = cli("report", undone.second["upload_id"], "--json")
    assert ran.code == 0 and ran.json()["undone"] is True
    text = cli("report", undone.second["upload_id"])
    assert "[undone]" in text.out


def test_undo_says_when_the_audience_could_not_be_rebuilt(env) -> None:
    summary = imported(
        write_csv(env.files / "undo3.csv", ["First Name", "Phone Number"], [["Vi", "(617) 555-0144"]]),
        "--campaign",
        "rollback-broken",
    )
    # the campaign now names a segment that does not exist: its audience cannot be rebuilt
    write_campaign(env.config, "rollback-broken", audience={"segments": ["no_such_segment"]})
    ran = cli("undo", summary["upload_id"])
    assert ran.code == 1
    assert "audience of campaign rollback-broken was not rebuilt" in ran.err and "Traceback" not in ran.err
    assert scalar(env.home, "SELECT status FROM uploads WHERE upload_id = ?", [summary["upload_id"]]) == "undone"


def test_undo_refuses_an_upload_that_was_never_imported(env, dnc) -> None:
    upload = write_csv(env.files / "blocked.csv", DNC_HEADER, DNC_ROWS[:2])
    blocked = cli("import", upload, "--campaign", "blocked", "--expected-count", "500", "--json").json()["upload_id"]
    ran = cli("undo", blocked)
    assert ran.code == 2 and "not imported" in ran.err
    assert scalar(env.home, "SELECT status FROM uploads WHERE upload_id = ?", [blocked]) == "blocked"
    assert cli("undo", "no-such-upload").code == 2


# --- audiences: agent variables and export ------------------------------------------------------------------

AGENT_VARIABLES = [
    {"name": "first_name", "source": "field", "field": "first_name", "required": True},
    {"name": "company", "source": "field", "field": "company", "value": "your company"},
    {"name": "plan_tier", "source": "custom", "field": "plan_tier", "value": "standard"},
    {"name": "agent_name", "source": "static", "value": "Callaro Assistant", "required": True},
]


@pytest.fixture(scope="module")
def voice(env):
    write_campaign(env.config, "voice", agent_variables=AGENT_VARIABLES)
    mapping = env.files / "voice_mapping.yaml"
    mapping.write_text(
        yaml.safe_dump(
            {
                "columns": {
                    "First": "first_name",
                    "Last": "last_name",
                    "Phone": "phone",
                    "Company": "company",
                    "Plan": "custom.plan_tier",
                }
            }
        ),
        encoding="utf-8",
    )
    rows = [
        ["Ann", "Lee", "(404) 555-0161", "Acme", "enterprise"],  # every variable from the contact
        ['=HYPERLINK("http://x")', "Kim", "(404) 555-0162", "", ""],  # static fallbacks; a formula as a name
        ["", "Nofirst", "(404) 555-0163", "Beta", "pro"],  # lacks the required first_name
    ]
    summary = imported(
        write_csv(env.files / "voice.csv", ["First", "Last", "Phone", "Company", "Plan"], rows),
        "--campaign",
        "voice",
        "--mapping",
        mapping,
    )
    return SimpleNamespace(summary=summary)


def test_agent_variables_follow_precedence_and_missing_required_is_reported(env, voice) -> None:
    rows = dict(query(env.home, "SELECT phone_e164, agent_variables FROM campaign_audiences WHERE campaign = 'voice'"))
    assert set(rows) == {"+14045550161", "+14045550162"}
    assert json.loads(rows["+14045550161"]) == {
        "first_name": "Ann",
        "company": "Acme",
        "plan_tier": "enterprise",
        "agent_name": "Callaro Assistant",
    }
    fallback = json.loads(rows["+14045550162"])
    assert fallback["company"] == "your company" and fallback["plan_tier"] == "standard"
    build_id, missing, detail = query(
        env.home,
        "SELECT build_id, missing_required, detail FROM audience_builds WHERE campaign = 'voice' ORDER BY built_at DESC",
    )[0]
    assert missing == 1 and json.loads(detail)["missing_by_variable"] == {"first_name": 1}
    # ... and on the campaign_audiences asset in Dagster, with the phone masked
    event = dg.DagsterInstance.get().get_latest_materialization_event(dg.AssetKey("campaign_audiences"))
    builds = event.asset_materialization.metadata["builds"].value
    voice_build = next(
        b for b in (builds.values() if isinstance(builds, dict) else builds) if b["build_id"] == build_id
    )
    assert voice_build["missing_required"] == 1
    assert voice_build["missing_sample_masked"] and "*" in voice_build["missing_sample_masked"][0]
    assert "4045550163" not in json.dumps(builds)


def test_audience_export_csv_is_formula_safe_and_parquet_keeps_values(env, voice) -> None:
    out = env.files / "voice_audience.csv"
    ran = cli("audience", "voice", "--out", out)
    assert ran.code == 0 and "2 callable contacts" in ran.out, ran.err
    exported = pl.read_csv(out, infer_schema_length=0)
    assert exported.height == 2
    for column in exported.columns:
        for cell in exported[column].drop_nulls():
            assert not cell.startswith(("=", "@")), (column, cell)
            assert not (cell[0] in "+-" and any(c.isalpha() for c in cell)), (column, cell)
    variables = [json.loads(v) for v in exported["agent_variables"]]
    assert '=HYPERLINK("http://x")' in {v["first_name"] for v in variables}  # data kept, inert inside the JSON
    parquet = env.files / "voice_audience.parquet"
    assert cli("audience", "voice", "--out", parquet).code == 0
    frame = pl.read_parquet(parquet)
    assert set(frame["phone_e164"]) == {"+14045550161", "+14045550162"}
    summary = cli("audience", "voice")
    assert summary.code == 0 and "2 callable contacts" in summary.out
    bad = cli("audience", "voice", "--out", env.files / "audience.txt")
    assert bad.code == 2 and ".csv or .parquet" in bad.err
    assert cli("audience", "no-such-campaign").code == 2


# --- contacts add | update | remove | export ----------------------------------------------------------------


@pytest.fixture(scope="module")
def manual(env, acme, dnc):
    state_before = query(env.home, "SELECT last_upload_id, last_columns FROM campaign_state WHERE campaign = 'acme'")
    added = cli(
        "contacts", "add", "--campaign", "acme", "--phone", "(720) 555-0171",
        "--field", "first_name=Ann", "--field", "last_name=Manual", "--field", "plan_tier=enterprise", "--json",
    )  # fmt: skip
    state_after = query(env.home, "SELECT last_upload_id, last_columns FROM campaign_state WHERE campaign = 'acme'")
    return SimpleNamespace(added=added, state_before=state_before, state_after=state_after)


def test_contacts_add_goes_through_the_gates(env, manual) -> None:
    assert manual.added.code == 0, manual.added.err
    summary = manual.added.json()
    assert summary["imported"] == 1 and "column_drift" not in summary
    row = query(
        env.home,
        "SELECT first_name, custom_fields->>'plan_tier' FROM contacts JOIN campaign_contacts USING (contact_id) "
        "WHERE campaign = 'acme' AND phone_e164 = '+17205550171'",
    )
    assert row == [("Ann", "enterprise")]
    # a hand-added contact is not the campaign's next vendor file: remembered mapping and columns stay
    assert manual.state_after == manual.state_before
    audience = {r[0] for r in query(env.home, "SELECT phone_e164 FROM campaign_audiences WHERE campaign = 'acme'")}
    assert "+17205550171" in audience


def test_contacts_add_refuses_invalid_phone_and_suppresses_dnc(env, manual) -> None:
    before = scalar(env.home, "SELECT count(*) FROM contacts")
    invalid = cli("contacts", "add", "--campaign", "acme", "--phone", "12345", "--field", "first_name=Bad")
    assert invalid.code in (1, 2) and "Traceback" not in invalid.err
    unknown = cli("contacts", "add", "--campaign", "acme", "--phone", "(720) 555-0172", "--field", "nosuch=1")
    assert unknown.code == 2 and "nosuch" in unknown.err
    listed = cli(
        "contacts", "add", "--campaign", "acme", "--phone", "212 555 0132", "--field", "first_name=Jo", "--json"
    )
    assert listed.code == 0 and listed.json()["suppressed"] == 1 and listed.json()["imported"] == 0
    assert scalar(env.home, "SELECT count(*) FROM contacts") == before
    acme_phones = {
        r[0]
        for r in query(
            env.home,
            "SELECT phone_e164 FROM contacts JOIN campaign_contacts USING (contact_id) WHERE campaign = 'acme'",
        )
    }
    assert "+12125550132" not in acme_phones


def test_contacts_update_dry_run_then_yes_is_recorded(env, manual) -> None:
    where = "first_name = Ann and custom.plan_tier = enterprise and last_name = Manual"
    dry = cli("contacts", "update", "--where", where, "--set", "lead_source=vip", "--set", "consent=opt-in")
    assert dry.code == 0 and "1 contacts would change" in dry.out and "--yes" in dry.out
    assert scalar(env.home, "SELECT count(*) FROM contacts WHERE lead_source = 'vip'") == 0
    done = cli("contacts", "update", "--where", where, "--set", "lead_source=vip", "--set", "consent=opt-in", "--yes")
    assert done.code == 0 and "1 contacts changed" in done.out, done.err
    assert query(env.home, "SELECT lead_source, consent FROM contacts WHERE phone_e164 = '+17205550171'") == [
        ("vip", "yes")
    ]
    change = query(env.home, "SELECT changed_by, detail FROM contact_changes WHERE action = 'update'")
    assert len(change) == 1 and json.loads(change[0][1])["fields"] == ["consent", "lead_source"]
    assert "Manual" not in change[0][1]  # conditions are recorded without their values
    bad = cli("contacts", "update", "--where", where, "--set", "email=not-an-address", "--yes")
    assert bad.code == 2 and "email" in bad.err


def test_contacts_export_and_remove(env, manual) -> None:
    out = env.files / "acme_export.csv"
    ran = cli("contacts", "export", "--where", "custom.plan_tier = enterprise and state = CO", "--out", out)
    assert ran.code == 0, ran.err
    exported = pl.read_csv(out, infer_schema_length=0)
    assert exported.height == 11 and set(exported["state"]) == {"CO"}
    where = "phone_e164 = +17205550171"
    dry = cli("contacts", "remove", "--where", where)
    assert dry.code == 0 and "1 contacts would change" in dry.out
    assert scalar(env.home, "SELECT count(*) FROM contacts WHERE phone_e164 = '+17205550171'") == 1
    done = cli("contacts", "remove", "--where", where, "--yes")
    assert done.code == 0, done.err
    assert scalar(env.home, "SELECT count(*) FROM contacts WHERE phone_e164 = '+17205550171'") == 0
    assert scalar(env.home, "SELECT count(*) FROM contact_changes WHERE action = 'remove'") == 1
    audience = {r[0] for r in query(env.home, "SELECT phone_e164 FROM campaign_audiences WHERE campaign = 'acme'")}
    assert "+17205550171" not in audience
    assert cli("contacts", "remove", "--where", "first_name; drop table contacts = x", "--yes").code == 2


# --- segments and demo: a subprocess with its own dbt project copy ------------------------------------------

DRIVER = """
import contextlib, io, json, sys, time
from callaro_pipeline.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    seconds = round(time.perf_counter() - started, 1)
    results.append({"argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue(), "seconds": seconds})
print("@@RESULTS@@" + json.dumps(results))
"""


def project_status() -> set[str] | None:
    """Modified and untracked (not ignored) paths of the project as `git status` lists them; None outside a git
    checkout (nothing to compare)."""
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        return None
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.splitlines())


@pytest.fixture(scope="module", autouse=True)
def _segments_start_early(request: pytest.FixtureRequest) -> None:
    """Start the segments/demo subprocess when the module starts, so it runs while the in-process tests do
    (only if a selected test needs it)."""
    if any("segmented" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("segments_run")


@pytest.fixture(scope="module")
def segments_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("segments_cli")
    home, config = root / "home", root / "config"
    shutil.copytree(PROJECT_ROOT / "config", config)
    project = PROJECT_ROOT / "dbt_contacts"
    write_campaign(config, "segmented", audience={"segments": ["ny_or_fl", "seg_lead_source_webinar"]})
    upload = write_csv(
        root / "segmented.csv",
        ["First Name", "Phone Number", "State", "Lead Source"],
        [
            ["Nia", "(646) 555-0181", "NY", "referral"],  # only in the filter segment
            ["Tex", "(512) 555-0182", "TX", "webinar"],  # only in the SQL segment
            ["Una", "(512) 555-0183", "TX", "referral"],  # in neither
        ],
    )
    evil_value = "company = \"x'); DROP TABLE contacts; --{{ run_query('drop table main.contacts') }}\""
    commands = {
        "demo": ["demo"],
        "create": ["segment", "create", "ny_or_fl", "--where", "state in (NY, FL)"],
        "evil_field": ["segment", "create", "evil_field", "--where", "lead_source; DROP TABLE contacts = x"],
        "evil_custom": ["segment", "create", "evil_custom", "--where", "custom.x') = 1"],
        "evil_or": ["segment", "create", "evil_or", "--where", "lead_source = 'x' or 1=1"],
        "evil_name": ["segment", "create", "x; drop table contacts", "--where", "state = NY"],
        "evil_value": ["segment", "create", "evil_value", "--dry-run", "--where", evil_value],
        "list": ["segment", "list"],
        "import": ["import", str(upload), "--campaign", "segmented", "--json"],
    }
    environ = {
        **os.environ,
        "CALLARO_HOME": str(home),
        "CALLARO_CONFIG": str(config),
        "DAGSTER_HOME": str(home / "dagster"),
    }
    for variable in ("CALLARO_DBT_PROJECT", "CALLARO_CATALOG", "CALLARO_DATA_PATH"):
        environ.pop(variable, None)
    status_before = project_status()
    # output to files, not pipes: a full pipe would stall the child until the tests read it
    with (root / "stdout.txt").open("w") as stdout, (root / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", DRIVER, json.dumps(list(commands.values()))],
            env=environ,
            cwd=root,
            stdout=stdout,
            stderr=stderr,
        )
    yield SimpleNamespace(
        root=root, home=home, project=project, commands=commands, process=process, status_before=status_before
    )
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def segmented(segments_run):
    run = segments_run
    returncode = run.process.wait(timeout=600)
    stdout = (run.root / "stdout.txt").read_text()
    assert returncode == 0 and "@@RESULTS@@" in stdout, (run.root / "stderr.txt").read_text()[-3000:]
    results = json.loads(stdout.split("@@RESULTS@@", 1)[1])
    return SimpleNamespace(
        home=run.home,
        project=run.project,
        results=dict(zip(run.commands, results, strict=True)),
        status_before=run.status_before,
    )


def test_demo_runs_end_to_end_in_an_empty_home(segmented) -> None:
    demo = segmented.results["demo"]
    assert demo["code"] == 0, demo["err"]
    assert "Where to look next" in demo["out"]
    assert str(segmented.home / "lake" / "catalog.sqlite") in demo["out"] and "callaro sql" in demo["out"]
    assert "callaro audience demo" in demo["out"]
    assert "Traceback" not in demo["out"] + demo["err"]
    assert scalar(segmented.home, "SELECT count(*) FROM campaign_audiences WHERE campaign = 'demo'") > 0


def test_the_demo_and_segment_commands_leave_git_status_unchanged(segmented) -> None:
    """Runtime state lives under CALLARO_HOME and CALLARO_CONFIG: a full demo, filter segments and an import
    change nothing git tracks or would add."""
    if segmented.status_before is None:
        pytest.skip("the project is not a git checkout here: nothing to compare `git status` with")
    assert project_status() == segmented.status_before


def test_segment_create_and_list(segmented) -> None:
    created = segmented.results["create"]
    assert created["code"] == 0, created["err"]
    assert "segments.ny_or_fl" in created["out"]
    # the model file lives under the installation's home, never in the project's tracked files
    assert (segmented.home / "dbt" / "models" / "segments" / "filters" / "ny_or_fl.sql").exists()
    assert not (segmented.project / "models" / "segments" / "filters" / "ny_or_fl.sql").exists()
    assert not (PROJECT_ROOT / "dbt_contacts" / "models" / "segments" / "filters" / "ny_or_fl.sql").exists()
    listed = segmented.results["list"]
    assert listed["code"] == 0
    kinds = {line.split()[0]: line.split()[1] for line in listed["out"].splitlines() if line.strip()}
    assert kinds["ny_or_fl"] == "filter" and kinds["seg_lead_source_webinar"] == "sql"
    model = (segmented.home / "dbt" / "models" / "segments" / "filters" / "ny_or_fl.sql").read_text()
    assert "'NY'" not in model and "'FL'" not in model  # values are data in segment_filters, never SQL


def test_segment_injection_attempts_are_refused(segmented) -> None:
    for name in ("evil_field", "evil_custom", "evil_or", "evil_name"):
        ran = segmented.results[name]
        assert ran["code"] == 2 and ran["err"].startswith("callaro: "), ran
        assert len(ran["err"].strip().splitlines()) == 1
    value = segmented.results["evil_value"]
    assert value["code"] == 0 and "would hold 0 contacts" in value["out"], value
    filters = segmented.home / "dbt" / "models" / "segments" / "filters"
    assert sorted(p.stem for p in filters.glob("*.sql")) == ["ny_or_fl"]
    assert scalar(segmented.home, "SELECT count(*) FROM contacts") > 0


def test_filter_and_sql_segments_both_feed_the_campaign_audience(segmented) -> None:
    ran = segmented.results["import"]
    assert ran["code"] == 0, ran["err"]
    home = segmented.home
    audience = {r[0] for r in query(home, "SELECT phone_e164 FROM campaign_audiences WHERE campaign = 'segmented'")}
    assert {"+16465550181", "+15125550182"} <= audience
    assert "+15125550183" not in audience
    outside = query(
        home,
        "SELECT count(*) FROM campaign_audiences a JOIN contacts c USING (contact_id) WHERE a.campaign = 'segmented' "
        "AND NOT (upper(c.state) IN ('NY', 'FL') OR lower(trim(c.lead_source)) = 'webinar')",
    )
    assert outside == [(0,)]
    detail = json.loads(
        scalar(home, "SELECT detail FROM audience_builds WHERE campaign = 'segmented' ORDER BY built_at DESC LIMIT 1")
    )
    assert detail["source"] == {"segments": ["ny_or_fl", "seg_lead_source_webinar"]}


def test_generated_filter_models_are_git_ignored() -> None:
    filters = PROJECT_ROOT / "dbt_contacts" / "models" / "segments" / "filters"
    probe = "dbt_contacts/models/segments/filters/some_segment.sql"
    git = shutil.which("git")
    if git and (PROJECT_ROOT / ".git").exists():
        done = subprocess.run([git, "check-ignore", "-q", probe], cwd=PROJECT_ROOT, check=False)
        assert done.returncode == 0, f"{probe} is not git-ignored"
        tracked = subprocess.run(
            [git, "ls-files", str(filters.relative_to(PROJECT_ROOT))],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert all(Path(p).suffix not in (".sql", ".yml", ".json") for p in tracked), tracked
    else:
        rules = (filters / ".gitignore").read_text().splitlines()
        assert "*" in rules or "*.sql" in rules

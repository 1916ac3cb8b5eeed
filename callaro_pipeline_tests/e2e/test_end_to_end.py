"""End to end: real Dagster runs of the import job into a temporary CALLARO_HOME, through the `callaro` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callaro_pipeline.cli.app import main
from callaro_pipeline.core.project_paths import PROJECT_ROOT
from callaro_pipeline_tests.conftest import open_lake, write_csv

SAMPLE = PROJECT_ROOT / "data" / "samples" / "demo_contacts.csv"
HEADER = ["First Name", "Last Name", "Phone Number", "E-mail", "Time Zone", "State"]


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def import_json(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, dict]:
    code, out, err = run_cli(capsys, "import", *args, "--json")
    assert out.strip(), err
    return code, json.loads(out.strip().splitlines()[-1])


def query(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = open_lake(home)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture
def imported_sample(callaro_env: Path, capsys: pytest.CaptureFixture) -> tuple[Path, dict]:
    code, summary = import_json(capsys, str(SAMPLE), "--campaign", "spring")
    assert code == 0, summary
    return callaro_env, summary


def test_sample_import_reaches_contact_book_and_audience(imported_sample: tuple[Path, dict]) -> None:
    home, summary = imported_sample
    assert summary["status"] == "imported"
    assert summary["rows_read"] == 62
    assert (
        summary["rows_read"]
        == summary["imported"] + summary["rejected"] + summary["duplicates"] + summary["suppressed"]
    )
    # the row with an unreadable typed zone is kept (flagged, never callable), not rejected
    assert summary["rejected"] == 3 and summary["duplicates"] == 2
    assert {c["name"] for c in summary["checks"]} >= {
        "pandera_validated_contacts",
        "great_expectations_upload",
        "dnc_lists_usable",
    }
    assert all(c["passed"] for c in summary["checks"])
    report = Path(summary["error_report"])
    assert report.read_text(encoding="utf-8").splitlines()[0] == "row_number,column,field,code,message,value"
    (books,) = query(home, "SELECT count(*) FROM contacts")[0:1]
    assert books[0] == summary["imported"]
    (members,) = query(home, "SELECT count(*) FROM campaign_audiences WHERE campaign = 'spring'")[0]
    assert 0 < members <= summary["imported"]
    (uploads,) = query(home, "SELECT status FROM uploads WHERE upload_id = ?", [summary["upload_id"]])[0]
    assert uploads == "imported"
    # the original bytes are kept with their sha256
    stored = list((home / "uploads" / summary["upload_id"]).glob("original*"))
    assert stored and stored[0].read_bytes() == SAMPLE.read_bytes()


def test_report_repeats_the_summary(imported_sample: tuple[Path, dict], capsys: pytest.CaptureFixture) -> None:
    _, summary = imported_sample
    code, out, _ = run_cli(capsys, "report", summary["upload_id"], "--json")
    assert code == 0
    again = json.loads(out)
    for key in ("upload_id", "campaign", "status", "rows_read", "imported", "rejected", "duplicates", "suppressed"):
        assert again[key] == summary[key]


def test_reimporting_the_same_file_adds_nothing(
    imported_sample: tuple[Path, dict], capsys: pytest.CaptureFixture
) -> None:
    home, first = imported_sample
    code, second = import_json(capsys, str(SAMPLE), "--campaign", "spring")
    assert code == 0
    assert second["same_file_as"] == first["upload_id"]
    assert second["imported"] == 0
    assert second["duplicates"] == first["imported"] + first["duplicates"]
    assert query(home, "SELECT count(*) FROM contacts")[0][0] == first["imported"]


def test_failed_gate_blocks_and_leaves_the_book_untouched(
    imported_sample: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    home, first = imported_sample
    other = write_csv(
        tmp_path / "other.csv",
        HEADER,
        [
            ["Ann", "Lee", "(212) 555-0199", "ann@example.com", "EST", "NY"],
            ["Bo", "Kim", "(646) 201-7789", "bo@example.com", "", "NY"],
        ],
    )
    code, summary = import_json(capsys, str(other), "--campaign", "spring", "--expected-count", "500")
    assert code == 1
    assert summary["status"] == "blocked"
    failed = [c for c in summary["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["great_expectations_upload"]
    assert "500" in failed[0]["detail"]
    assert query(home, "SELECT count(*) FROM contacts")[0][0] == first["imported"]
    assert query(home, "SELECT count(*) FROM campaign_contacts WHERE upload_id = ?", [summary["upload_id"]])[0][0] == 0


@pytest.mark.parametrize(
    ("content", "code", "fragment"),
    [
        (b"", 2, "empty"),
        (b"\x00\x01\x02\x03binary\x00\xff" * 50, 2, ""),
        (b"First Name,Phone Number\r\n", 1, ""),
    ],
    ids=["empty", "binary", "header-only"],
)
def test_bad_files_give_one_line_and_an_exit_code(
    callaro_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture, content: bytes, code: int, fragment: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    exit_code, out, err = run_cli(capsys, "import", str(bad), "--campaign", "spring")
    assert exit_code == code
    assert "Traceback" not in out + err
    assert fragment in out.lower() + err.lower()
    # the original is kept for a look, nothing reached the book
    assert list((callaro_env / "uploads").glob("*/original*"))
    assert query(callaro_env, "SELECT count(*) FROM contacts")[0][0] == 0


@pytest.mark.parametrize("campaign", ["../etc", "a b", 'x"; DROP TABLE contacts; --', "/abs"])
def test_hostile_campaign_names_are_refused(callaro_env: Path, capsys: pytest.CaptureFixture, campaign: str) -> None:
    code, out, err = run_cli(capsys, "import", str(SAMPLE), "--campaign", campaign)
    assert code == 2
    assert "campaign name" in err and "Traceback" not in err
    assert not (callaro_env / "uploads").exists() or not any((callaro_env / "uploads").iterdir())


def test_usage_errors_exit_2(callaro_env: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli(capsys, "import", str(SAMPLE))
    assert code == 2 and "--campaign" in err
    code, _, err = run_cli(capsys, "import", "/no/such/file.csv", "--campaign", "x")
    assert code == 2 and "no such file" in err

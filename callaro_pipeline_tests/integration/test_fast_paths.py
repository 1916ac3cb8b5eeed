"""Every fast path added for million-row uploads and national DNC files gives exactly the slow path's answer."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from email_validator import EmailNotValidError, validate_email
from test_contact_book import register_upload, released_rows

from callaro_pipeline.core import contact_book, dnc_files, reading_csv
from callaro_pipeline.core.campaign_settings import AgentVariable
from callaro_pipeline.core.config import Campaign
from callaro_pipeline.core.field_checks import email_verdicts
from callaro_pipeline.core.reading import read_table
from callaro_pipeline.core.table_frames import ReadLimits
from callaro_pipeline.storage import contact_book_merge, dnc_loads
from callaro_pipeline.storage.audiences import build_audience
from callaro_pipeline.storage.warehouse import Warehouse

# --- CSV: the bulk reader for plain files ---------------------------------------------------------------------

CSV_FILES = {
    "plain": "Name,Phone,Zip\nAnn,(415) 555-0134,02134\nBob,212.555.0199,\n",
    "crlf and wrapping quotes": 'Name,Phone\r\n"Ann","415 555 0134"\r\n"",""\r\nBob,2125550199\r\n',
    "no final newline": "Name;Phone\nAnn;4155550134",
    "title rows": "Export of 2026-03-01\n\nName\tPhone\nAnn\t4155550134\n",
    "quoted delimiter": 'Name,Phone\n"Lee, Ann",4155550134\n',
    "doubled quote": 'Name,Phone\n"Ann ""A""",4155550134\n',
    "quote inside a cell": 'Name,Phone\nAn"n,4155550134\n',
    "quoted line break": 'Name,Phone\n"Ann\nLee",4155550134\nBob,2125550199\n',
    "blank line": "Name,Phone\nAnn,4155550134\n\nBob,2125550199\n",
    "short and long rows": "Name,Phone\nAnn\nBob,2125550199,x\n",
    "padded row": "Name,Phone\nAnn,4155550134,,\n",
    "lone CR": "Name,Phone\rAnn,4155550134\r",
    "spaces and damage": "Name,Phone\n  Ann  ,4155550134.0\n ,\n",
}


@pytest.mark.parametrize("text", CSV_FILES.values(), ids=CSV_FILES.keys())
def test_the_bulk_csv_reader_agrees_with_the_csv_module(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = text.encode("utf-8")
    fast = read_table(data, "upload.csv")
    monkeypatch.setattr(reading_csv, "_parse_plain", lambda *args: None)
    slow = read_table(data, "upload.csv")
    assert fast.columns == slow.columns
    assert fast.rows.equals(slow.rows)
    assert fast.malformed.equals(slow.malformed)
    assert (fast.repaired_cells, fast.header_row) == (slow.repaired_cells, slow.header_row)


def test_the_bulk_csv_reader_takes_a_generated_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    lines = ["Customer ID,First Name,Phone Number,Consent"]
    for n in range(2000):
        name = rng.choice(["Ann", "Bob", '""', "", "Zoë", "  Li  "])
        lines.append(
            f"C{n},{name},{rng.choice(['(415) 555-0134', '4155550134.0', 'n/a', ''])},{rng.choice(['yes', ''])}"
        )
    data = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    assert reading_csv._parse_plain(data.decode(), ",", 0, 4, ReadLimits()) is not None  # the fast path is taken
    fast = read_table(data, "upload.csv")
    monkeypatch.setattr(reading_csv, "_parse_plain", lambda *args: None)
    assert fast.rows.equals(read_table(data, "upload.csv").rows)


# --- e-mail: email-validator once per domain for the usual shape ----------------------------------------------


def test_email_verdicts_are_email_validators_own() -> None:
    rng = random.Random(11)
    atext = string.ascii_letters + string.digits + "_!#$%&'*+/=?^`{|}~-."
    domains = [
        "example.com",
        "Example.COM",
        "xn--bcher-kva.de",
        "bücher.de",
        "localhost",
        "a.local",
        "x.invalid",
        "a-b.co",
        "-ab.com",
        "a..b.com",
        "com",
        "1.2.3.4",
        "[1.2.3.4]",
        "ab--cd.com",
        "x" * 64 + ".com",
        ("a" * 60 + ".") * 4 + "com",
        "mail.example.arpa",
        "foo.123",
        "ex_ample.com",
        "",
    ]
    locals_ = [
        "user",
        "User.Name",
        "info",
        "Info",
        "POSTMASTER",
        "a.",
        ".a",
        "a..b",
        "x" * 65,
        "x" * 250,
        "o'brien",
        '"quoted"',
        "名前",
        "a b",
        "",
        "Support",
        "abuse",
    ]
    values = [f"{local}@{domain}" for local in locals_ for domain in domains]
    values += ["broken@@example", "no-at-sign", "Name <a@b.com>", "a@b@c.com", "a＠b.com", None]
    values += [
        "".join(rng.choice(atext) for _ in range(rng.randint(1, 12))) + "@" + rng.choice(domains) for _ in range(3000)
    ]
    verdicts = email_verdicts(pl.Series("email", values, dtype=pl.Utf8))
    assert verdicts.height == len({v for v in values if v is not None})
    for email, normalized, error in verdicts.iter_rows():
        try:
            expected = (validate_email(email, check_deliverability=False).normalized, None)
        except EmailNotValidError as exc:
            expected = (None, str(exc))
        assert (normalized, error) == expected, email


# --- DNC: bare registry lines read as integers ------------------------------------------------------------------


def test_registry_lines_read_as_integers_follow_the_general_rule(tmp_path: Path) -> None:
    lines = [
        "2125550134",
        "12125550135",
        "+12125550136",
        "212-555-0137",
        "(212) 555 0138",
        " 2125550139 ",
        "2125550134",
        "0212555013",
        "1212555013",
        "2120550134",
        "2121550134",
        "21255501340",
        "+2125550141",
        "-2125550142",
        "2.125550143e9",
        "2_125550144",
        "212555014",
        "",
        "   ",
        "abc",
        "1-800-FLOWERS",
        "2125550145\r",
        "12125550146.0",
        "9995550147",
        "１２１２５５５０１４８",
    ]
    path = tmp_path / "national.txt"
    # the general rule, line by line
    expected, junk, readable = set(), 0, []
    for line in lines:
        digits = "".join(ch for ch in line.strip() if ch not in " \t().+-\r")
        ok = len(digits) in (10, 11) and digits.isascii() and digits.isdigit()
        ok = ok and (len(digits) == 10 or digits[0] == "1")
        national = digits[-10:]
        if ok and national[0] in "23456789" and national[3] in "23456789":
            expected.add(10_000_000_000 + int(national))
            readable.append(line)
        elif line.strip():
            junk += 1
        else:
            readable.append(line)
    # a file with unreadable lines is refused whole, with their count (fail closed)
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    with pytest.raises(dnc_files.DncFileRefused, match=f"{junk} line"):
        dnc_files.read_bare_lines(path, path.name)
    # its readable lines alone are read exactly as the general rule says
    path.write_bytes(("\n".join(readable) + "\n").encode("utf-8"))
    numbers, rejected = dnc_files.read_bare_lines(path, path.name)
    assert sorted(numbers["number"].to_list()) == sorted(expected)
    assert rejected == 0


def test_area_code_counts_by_binary_search_equal_a_group_by() -> None:
    rng = np.random.default_rng(5)
    numbers = pl.DataFrame({"number": rng.integers(12_000_000_000, 19_999_999_999, 50_000)}).unique()
    expected = (
        numbers.group_by(((pl.col("number") // 10_000_000) % 1000).cast(pl.Int16).alias("area_code"))
        .agg(pl.len().cast(pl.Int64).alias("rows_loaded"))
        .sort("area_code")
    )
    assert dnc_files.area_code_counts(numbers).equals(expected)  # unsorted input
    assert dnc_files.area_code_counts(numbers.sort("number")).equals(expected)
    edges = pl.DataFrame({"number": [12_000_000_000, 12_009_999_999, 12_010_000_000, 19_999_999_999]})
    assert dnc_files.area_code_counts(edges).rows() == [(200, 2), (201, 1), (999, 1)]


# --- contact book: trimming as DuckDB's trim() ------------------------------------------------------------------


def test_the_books_trim_is_duckdbs() -> None:
    characters = [chr(code) for code in range(0x3100) if not 0xD800 <= code <= 0xDFFF]
    values = [f"{ch}a{ch}" for ch in characters]
    duck = duckdb.connect()
    trimmed = [row[0] for row in duck.execute("SELECT trim(v) FROM unnest(?::VARCHAR[]) t(v)", [values]).fetchall()]
    ours = pl.Series(values).str.strip_chars(contact_book._SPACE_SEPARATORS).to_list()
    assert ours == trimmed


# --- audiences: an import's incremental build equals a full one -------------------------------------------------

ZONES = {"timezone": "America/New_York", "timezone_candidates": ["America/New_York"], "timezone_source": "phone"}


def _audience(con, campaign: str) -> list[tuple]:
    return con.execute(
        "SELECT contact_id, phone_e164, timezone, external_id, next_call_start_utc, agent_variables, dnc_snapshot, "
        "consent_evidence FROM campaign_audiences WHERE campaign = ? ORDER BY contact_id",
        [campaign],
    ).fetchall()


def _counts(build) -> tuple:
    detail = {k: v for k, v in build.detail.items() if k not in ("build", "evaluated", "changed")}
    return build.members, build.suppressed, build.missing_required, build.not_callable, detail


def _upload(con, upload_id: str, campaign: str, when: datetime, *rows: dict) -> None:
    register_upload(con, upload_id, campaign)
    contact_book_merge.merge_upload_into_book(
        con, upload_id=upload_id, campaign=campaign, contacts=released_rows(*rows), now=when
    )


def test_an_incremental_build_equals_a_full_build(tmp_path: Path) -> None:
    campaign = Campaign(
        name="spring",
        require_consent=True,
        agent_variables=[AgentVariable(name="first_name", source="field", required=True)],
    )
    start = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    yes = {"consent": "yes", "consent_date": "2026-01-02", "consent_source": "web"}
    with Warehouse(home=str(tmp_path)).transaction() as con:
        for source in campaign.dnc_sources:
            dnc_loads.add_numbers(con, ["+12125559999"], source=source)
        dnc_loads.add_numbers(con, ["+12125550103"], source="internal")
        _upload(
            con,
            "u1",
            "spring",
            start - hour,
            {"phone_e164": "+12125550101", "first_name": "Ann", **ZONES, **yes},
            {"phone_e164": "+12125550102", "first_name": "Bob", **ZONES},  # no consent
            {"phone_e164": "+12125550108", "first_name": "Gil", **ZONES, **yes},  # untouched later
        )
        _upload(con, "u0", "autumn", start - hour, {"phone_e164": "+12125550104", "first_name": "Di", **ZONES, **yes})
        first = build_audience(con, campaign, now=start, incremental=True)
        assert first.detail["build"] == "full"  # nothing to build on yet

        # a new upload: a member, one listed, one lacking a variable, and Bob consenting after all
        _upload(
            con,
            "u2",
            "spring",
            start + hour / 2,
            {"phone_e164": "+12125550103", "first_name": "Cy", **ZONES, **yes},
            {"phone_e164": "+12125550105", **ZONES, **yes},
            {"phone_e164": "+12125550106", "first_name": "Ed", **ZONES, **yes},
            {"phone_e164": "+12125550102", "first_name": "Bob", **ZONES, **yes},
        )
        # Ann (in this campaign) is updated by an upload to another campaign; Di is not in this one
        _upload(con, "u3", "autumn", start + hour / 2, {"phone_e164": "+12125550101", "first_name": "Annie", **ZONES})
        incremental = build_audience(con, campaign, now=start + hour, incremental=True)
        assert incremental.detail["build"] == "incremental"
        assert incremental.detail["evaluated"] == 5  # Ann, Bob, Cy, 105, Ed: not Gil, not Di
        incremental_audience = _audience(con, "spring")
        full = build_audience(con, campaign, now=start + hour)
        assert full.detail["build"] == "full" and full.detail["changed"] == 0
        assert _audience(con, "spring") == incremental_audience
        assert _counts(incremental) == _counts(full)
        assert sorted(row[1] for row in incremental_audience) == [
            "+12125550101",
            "+12125550102",
            "+12125550106",
            "+12125550108",
        ]
        # every build keeps its members
        frozen = con.execute(
            "SELECT phone_e164 FROM audience_members WHERE build_id = ? ORDER BY 1", [first.build_id]
        ).fetchall()
        assert frozen == [("+12125550101",), ("+12125550108",)]

        # a DNC load since the latest build: the next import's build evaluates everyone
        dnc_loads.add_numbers(con, ["+12125550106"], source="internal")
        _upload(
            con, "u4", "spring", start + 2 * hour, {"phone_e164": "+12125550107", "first_name": "Flo", **ZONES, **yes}
        )
        after_dnc = build_audience(con, campaign, now=start + 3 * hour, incremental=True)
        assert after_dnc.detail["build"] == "full"
        assert sorted(row[1] for row in _audience(con, "spring")) == [
            "+12125550101",
            "+12125550102",
            "+12125550107",
            "+12125550108",
        ]

import csv

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callaro_pipeline.core.report import (
    REPORT_COLUMNS,
    make_inert,
    summary_markdown,
    write_csv_safely,
    write_error_report,
)


@pytest.mark.parametrize(
    ("cell", "exported"),
    [
        ('=HYPERLINK("http://evil.example","click")', '\'=HYPERLINK("http://evil.example","click")'),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("+1 415 555 0134 ext 9", "'+1 415 555 0134 ext 9"),
        ("+14155550134", "+14155550134"),
        ("+1 (415) 555-0134", "+1 (415) 555-0134"),
        ("+49 30/901820", "+49 30/901820"),
        ("-12.5", "-12.5"),
        ("Ann = Bob", "Ann = Bob"),
        ("ann@example.com", "ann@example.com"),
        ("", ""),
    ],
)
def test_formula_cells_are_made_inert_and_phones_stay_intact(cell, exported):
    assert make_inert(pl.DataFrame({"value": [cell]}))["value"].to_list() == [exported]


def test_non_text_columns_and_nulls_are_untouched():
    df = pl.DataFrame({"n": [-1, 2], "text": [None, "=1"], "flag": [True, False]})
    assert make_inert(df).to_dict(as_series=False) == {"n": [-1, 2], "text": [None, "'=1"], "flag": [True, False]}


@given(st.text())
def test_no_exported_cell_can_start_a_formula(cell):
    exported = make_inert(pl.DataFrame({"value": [cell]}))["value"].item()
    assert exported in (cell, "'" + cell)
    assert not exported.startswith(("=", "@", "\t", "\r"))
    if exported.startswith(("+", "-")):
        assert set(exported[1:]) <= set("0123456789 ()./-")


def read_csv_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_write_csv_safely_is_inert_flat_and_atomic(tmp_path):
    df = pl.DataFrame({"phone": ["+14155550134"], "note": ["=1+1"], "zones": [["America/New_York", "America/Chicago"]]})
    path = write_csv_safely(df, tmp_path / "out" / "duplicates.csv")
    assert read_csv_rows(path) == [
        ["phone", "note", "zones"],
        ["+14155550134", "'=1+1", "America/New_York; America/Chicago"],
    ]
    assert [p.name for p in path.parent.iterdir()] == ["duplicates.csv"]


def test_error_report_has_exactly_the_report_columns_sorted_by_row(tmp_path):
    problems = pl.DataFrame(
        {
            "code": ["invalid_phone", "duplicate", "invalid_email"],
            "value": ["=2+2", "+14155550134", "x@"],
            "row_number": [7, 3, 7],
            "message": ["not a phone", "same phone as row 2", "bad"],
            "field": ["phone", "phone", "email"],
            "column": ["Tel", "Tel", "Mail"],
            "internal": ["a", "b", "c"],
        }
    )
    rows = read_csv_rows(write_error_report(problems, tmp_path / "errors.csv"))
    assert rows == [
        REPORT_COLUMNS,
        ["3", "Tel", "phone", "duplicate", "same phone as row 2", "+14155550134"],
        ["7", "Tel", "phone", "invalid_phone", "not a phone", "'=2+2"],
        ["7", "Mail", "email", "invalid_email", "bad", "x@"],
    ]


def test_empty_error_report_still_has_its_header(tmp_path):
    empty = pl.DataFrame(schema={name: pl.Int64 if name == "row_number" else pl.Utf8 for name in REPORT_COLUMNS})
    assert read_csv_rows(write_error_report(empty, tmp_path / "errors.csv")) == [REPORT_COLUMNS]


def test_summary_markdown():
    text = summary_markdown(
        {
            "upload_id": "u-20260101-abc",
            "campaign": "spring",
            "status": "imported",
            "rows_read": 120,
            "imported": 110,
            "rejected": 7,
            "duplicates": 3,
            "suppressed": 2,
            "problems_by_code": {"invalid_phone": 5, "duplicate": 3, "missing_required": 2},
            "checks": [
                {"name": "pandera_validated", "passed": True, "detail": "0 failures"},
                {"name": "rejected_share", "passed": False, "detail": "5.8% | limit 10%"},
            ],
            "error_report": "/data/reports/u-20260101-abc/errors.csv",
            "timings": {"read_seconds": 0.12, "validate_seconds": 0.4},
        }
    )
    assert "### Import summary: spring u-20260101-abc" in text
    for line in (
        "| rows read | 120 |",
        "| imported | 110 |",
        "| rejected | 7 |",
        "| duplicates | 3 |",
        "| suppressed | 2 |",
        "| error report | `/data/reports/u-20260101-abc/errors.csv` |",
        "| invalid_phone | 5 |",
        "| rejected_share | no | 5.8% \\| limit 10% |",
        "| validate_seconds | 0.4 |",
    ):
        assert line in text.splitlines()


def test_summary_markdown_skips_what_it_does_not_have():
    text = summary_markdown({"rows_read": 0})
    assert "| rows read | 0 |" in text
    assert "Checks" not in text and "Timings" not in text and "error report" not in text

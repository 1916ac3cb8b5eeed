"""`callaro sql "QUERY" [--out FILE.csv|.parquet|.json]`: read-only SQL over a real warehouse, through `cli.main`.

One installation per module: a small CSV is imported once by `callaro import` (one Dagster run); every test only
reads it, and the refusal tests check that the contact book is exactly as it was.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from callaro_pipeline.cli.output import FRAME_ROW_LIMIT
from callaro_pipeline.cli.sql import check_read_only
from callaro_pipeline.core.errors import CallaroError
from callaro_pipeline_tests.conftest import cli, install_callaro_env, write_csv

PEOPLE = [["Ann", "Lee", "(415) 555-0134"], ["Bob", "Ray", "(415) 555-0135"], ["Cy", "Orr", "(303) 555-0136"]]
NAMES_QUERY = "SELECT first_name, last_name, phone_e164 FROM contacts ORDER BY first_name"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sql")
    with pytest.MonkeyPatch.context() as patch:
        home = install_callaro_env(root, patch)
        upload = write_csv(root / "people.csv", ["First Name", "Last Name", "Phone"], PEOPLE)
        ran = cli("import", upload, "--campaign", "spring", "--json")
        assert ran.code == 0, ran.err
        yield SimpleNamespace(home=home, files=root)


def book_state() -> str:
    """Everything a write could change, as text: contacts, campaign links, tables and settings of the warehouse."""
    ran = cli(
        "sql",
        "SELECT (SELECT count(*) FROM contacts) AS contacts, (SELECT count(*) FROM campaign_contacts) AS links, "
        "(SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables) AS tables",
    )
    assert ran.code == 0, ran.err
    return ran.out


def test_a_query_prints_a_table_with_every_row(warehouse) -> None:
    ran = cli("sql", NAMES_QUERY)
    assert ran.code == 0 and ran.err == "", ran.err
    assert "shape: (3, 3)" in ran.out
    for first, last, _ in PEOPLE:
        assert first in ran.out and last in ran.out
    assert "+14155550134" in ran.out
    assert "showing the first" not in ran.out


def test_analyst_statements_that_read_are_allowed(warehouse) -> None:
    for query in ("SHOW TABLES", "DESCRIBE contacts", "FROM campaign_contacts", "EXPLAIN SELECT * FROM contacts"):
        ran = cli("sql", query)
        assert ran.code == 0, (query, ran.err)


def test_a_long_result_is_cut_with_a_note(warehouse) -> None:
    ran = cli("sql", f"SELECT range AS n FROM range({FRAME_ROW_LIMIT + 5})")
    assert ran.code == 0, ran.err
    assert f"showing the first {FRAME_ROW_LIMIT} of {FRAME_ROW_LIMIT + 5} rows" in ran.out
    assert f"│ {FRAME_ROW_LIMIT - 1} " in ran.out and f"│ {FRAME_ROW_LIMIT} " not in ran.out


def test_out_csv_is_formula_safe(warehouse, tmp_path: Path) -> None:
    out = tmp_path / "people.csv"
    ran = cli("sql", f"SELECT first_name, '=HYPERLINK(1)' AS note FROM ({NAMES_QUERY})", "--out", out)
    assert ran.code == 0, ran.err
    assert ran.out.strip() == f"3 rows written to {out}"
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["first_name"] for row in rows] == ["Ann", "Bob", "Cy"]
    assert {row["note"] for row in rows} == {"'=HYPERLINK(1)"}


def test_out_parquet_reads_back(warehouse, tmp_path: Path) -> None:
    out = tmp_path / "people.parquet"
    assert cli("sql", NAMES_QUERY, "--out", out).code == 0
    frame = pl.read_parquet(out)
    assert frame.columns == ["first_name", "last_name", "phone_e164"]
    assert frame.get_column("phone_e164").to_list() == ["+14155550134", "+14155550135", "+13035550136"]


def test_out_json_is_an_array_of_row_objects(warehouse, tmp_path: Path) -> None:
    out = tmp_path / "people.json"
    assert cli("sql", NAMES_QUERY, "--out", out).code == 0
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert rows[0] == {"first_name": "Ann", "last_name": "Lee", "phone_e164": "+14155550134"}
    assert len(rows) == 3


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO dnc_numbers SELECT * FROM dnc_numbers",
        "UPDATE contacts SET first_name = 'x'",
        "DELETE FROM contacts",
        "TRUNCATE contacts",
        "CREATE TABLE stolen AS SELECT * FROM contacts",
        "CREATE MACRO m() AS 1",
        "DROP TABLE contacts",
        "ALTER TABLE contacts ADD COLUMN x INTEGER",
        "ATTACH ':memory:' AS other",
        "COPY contacts TO '{out}'",
        "EXPORT DATABASE '{out}'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET memory_limit = '1GB'",
        "PRAGMA enable_profiling",
        "CALL dbgen(sf = 0.01)",
        "CHECKPOINT",
        "EXPLAIN ANALYZE DELETE FROM contacts",
        "EXPLAIN DELETE FROM contacts",
        "SELECT 1; DELETE FROM contacts",
        "BEGIN TRANSACTION",
    ],
)
def test_anything_but_a_read_is_refused_in_one_line(warehouse, tmp_path: Path, statement: str) -> None:
    before = book_state()
    out = tmp_path / "copy.csv"
    ran = cli("sql", statement.format(out=out))
    assert ran.code == 2
    assert ran.out == ""
    assert ran.err.startswith("callaro: sql: ") and ran.err.count("\n") == 1, ran.err
    assert "Traceback" not in ran.err
    assert not out.exists()
    assert book_state() == before


def test_the_parser_decides_not_keywords() -> None:
    """A read that mentions write keywords is a read; a write hidden behind a comment is a write."""
    check_read_only("SELECT 'DELETE FROM contacts; DROP TABLE x' AS text")
    check_read_only("-- a note\nWITH a AS (SELECT 1 AS x) SELECT * FROM a;")
    with pytest.raises(CallaroError, match="only reads"):
        check_read_only("/* SELECT */ DELETE FROM contacts")
    with pytest.raises(CallaroError, match="empty"):
        check_read_only("  ;  ")


def test_a_sql_error_is_one_short_line(warehouse) -> None:
    ran = cli("sql", "SELECT * FROM no_such_table")
    assert ran.code == 2 and ran.out == ""
    assert ran.err.startswith("callaro: sql: Catalog Error") and ran.err.count("\n") == 1, ran.err

    long_query = "SELECT '" + "x" * 10_000 + "' FROM no_such_table"
    ran = cli("sql", long_query)
    assert ran.code == 2
    assert ran.err.startswith("callaro: sql: ") and ran.err.count("\n") == 1
    assert len(ran.err) < 400, len(ran.err)

    ran = cli("sql", "SELEC 1")
    assert ran.code == 2 and ran.err.startswith("callaro: sql: Parser Error") and ran.err.count("\n") == 1


def test_an_unknown_out_suffix_is_refused(warehouse, tmp_path: Path) -> None:
    out = tmp_path / "people.xlsx"
    ran = cli("sql", NAMES_QUERY, "--out", out)
    assert ran.code == 2
    assert ran.err == "callaro: --out must end in .csv, .parquet or .json, not 'people.xlsx'\n"
    assert not out.exists() and list(tmp_path.iterdir()) == []

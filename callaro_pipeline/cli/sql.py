"""`callaro sql "QUERY" [--out FILE.csv|.parquet|.json]`: read-only SQL over the warehouse as analysts see it.

Two guards keep it a read: DuckDB's own parser must find exactly one SELECT (or a plain EXPLAIN of one; EXPLAIN
ANALYZE runs its statement and is refused), and the query runs on the read-only connection of
`Warehouse().read()`. A `.json` file is one JSON array of row objects.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import duckdb
import polars as pl

from callaro_pipeline.cli.arguments import Parser, UsageError
from callaro_pipeline.cli.output import one_line, print_frame, shortened
from callaro_pipeline.storage.warehouse import Warehouse

OUTPUT_SUFFIXES = (".csv", ".parquet", ".json")
MESSAGE_LIMIT = 300
PLAIN_EXPLAIN = re.compile(r"\s*explain\s+(?!analy[sz]e\b)(?P<explained>.*)", re.IGNORECASE | re.DOTALL)


class SqlError(UsageError):
    """A query refused or failed: `callaro: sql: <reason>`, exit 2."""

    def __init__(self, reason: object) -> None:
        super().__init__(f"sql: {shortened(one_line(reason), MESSAGE_LIMIT)}")


def register(commands: Parser) -> None:
    p = commands.add_command("sql", "read-only SQL over the warehouse; prints a table or writes a file")
    p.add_argument(
        "query", help='one SELECT statement, e.g. "SELECT campaign, count(*) FROM campaign_contacts GROUP BY 1"'
    )
    p.add_argument("--out", help="write the result to FILE.csv (formula-safe), FILE.parquet or FILE.json (an array)")
    p.set_defaults(func=cmd_sql)


def cmd_sql(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"--out must end in .csv, .parquet or .json, not {out.name!r}")
    check_read_only(args.query)
    with Warehouse().read() as con:
        try:
            result = con.execute(args.query).pl()
        except duckdb.Error as error:
            raise SqlError(error) from None
    if out is None:
        print_frame(result)
        return 0
    write_result(result, out)
    print(f"{result.height} rows written to {out}")
    return 0


def check_read_only(query: str) -> None:
    """Refuses (SqlError) anything but one statement that DuckDB's parser reads as a SELECT (SHOW, DESCRIBE,
    SUMMARIZE, VALUES and FROM-first queries are SELECTs to it) or a plain EXPLAIN of one."""
    statement = _only_statement(query)
    if statement.type == duckdb.StatementType.SELECT:
        return
    if statement.type == duckdb.StatementType.EXPLAIN:
        explain = PLAIN_EXPLAIN.fullmatch(query)
        if explain and _only_statement(explain["explained"]).type == duckdb.StatementType.SELECT:
            return
        raise SqlError("only a plain EXPLAIN of a SELECT is allowed (EXPLAIN ANALYZE runs its statement)")
    raise SqlError(f"only reads are allowed (SELECT or EXPLAIN), not {statement.type.name}: nothing was run")


def _only_statement(query: str) -> duckdb.Statement:
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as error:
        raise SqlError(error) from None
    if not statements:
        raise SqlError("the query is empty")
    if len(statements) != 1:
        raise SqlError(f"give exactly one statement, not {len(statements)}: nothing was run")
    return statements[0]


def write_result(result: pl.DataFrame, out: Path) -> None:
    """CSV formula-safe (like every export), parquet, or JSON (an array of row objects); atomically."""
    from callaro_pipeline.core.report import write_atomically, write_csv_safely

    suffix = out.suffix.lower()
    try:
        if suffix == ".csv":
            write_csv_safely(result, out)
        elif suffix == ".parquet":
            write_atomically(out, result.write_parquet)
        else:
            write_atomically(out, result.write_json)
    except pl.exceptions.PolarsError as error:
        raise SqlError(f"the result cannot be written to {out.name}: {error}") from None

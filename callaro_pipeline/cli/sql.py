"""`callaro sql "QUERY" [--out FILE.csv|.parquet|.json]`: read-only SQL over the warehouse as analysts see it.

The statement is checked and run by `storage.analyst_queries` (one SELECT or a plain EXPLAIN of one, on the
read-only connection); a refusal is `callaro: sql: <reason>`, exit 2. A `.json` file is one JSON array of row objects.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from callaro_pipeline.cli.arguments import Parser, UsageError
from callaro_pipeline.cli.output import one_line, print_frame, shortened
from callaro_pipeline.storage import analyst_queries

OUTPUT_SUFFIXES = (".csv", ".parquet", ".json")
MESSAGE_LIMIT = 300


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
    try:
        result = analyst_queries.run_read_query(args.query)
    except analyst_queries.QueryRefused as error:
        raise SqlError(error) from None
    if out is None:
        print_frame(result)
        return 0
    write_result(result, out)
    print(f"{result.height} rows written to {out}")
    return 0


def check_read_only(query: str) -> None:
    """Refuses (SqlError) anything but one read: see `storage.analyst_queries.check_read_only`."""
    try:
        analyst_queries.check_read_only(query)
    except analyst_queries.QueryRefused as error:
        raise SqlError(error) from None


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

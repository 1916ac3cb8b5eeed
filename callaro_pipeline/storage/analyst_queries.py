"""The engine side of `callaro sql`: decide whether one statement is a read, and run it read-only.

Two guards keep it a read: DuckDB's own parser must find exactly one SELECT (or a plain EXPLAIN of one; EXPLAIN
ANALYZE runs its statement and is refused), and the query runs on the read-only connection of
`Warehouse().read()`. Every refusal or engine failure is a `QueryRefused` carrying the reason.
"""

from __future__ import annotations

import re

import duckdb
import polars as pl

from callaro_pipeline.storage.warehouse import Warehouse

PLAIN_EXPLAIN = re.compile(r"\s*explain\s+(?!analy[sz]e\b)(?P<explained>.*)", re.IGNORECASE | re.DOTALL)


class QueryRefused(Exception):
    """A query that is not one read, or that the engine could not run; the message is the reason."""


def check_read_only(query: str) -> None:
    """Refuses (QueryRefused) anything but one statement that DuckDB's parser reads as a SELECT (SHOW, DESCRIBE,
    SUMMARIZE, VALUES and FROM-first queries are SELECTs to it) or a plain EXPLAIN of one."""
    statement = _only_statement(query)
    if statement.type == duckdb.StatementType.SELECT:
        return
    if statement.type == duckdb.StatementType.EXPLAIN:
        explain = PLAIN_EXPLAIN.fullmatch(query)
        if explain and _only_statement(explain["explained"]).type == duckdb.StatementType.SELECT:
            return
        raise QueryRefused("only a plain EXPLAIN of a SELECT is allowed (EXPLAIN ANALYZE runs its statement)")
    raise QueryRefused(f"only reads are allowed (SELECT or EXPLAIN), not {statement.type.name}: nothing was run")


def run_read_query(query: str) -> pl.DataFrame:
    """The result of one read (checked first) on the warehouse's read-only connection."""
    check_read_only(query)
    with Warehouse().read() as con:
        try:
            return con.execute(query).pl()
        except duckdb.Error as error:
            raise QueryRefused(str(error)) from None


def _only_statement(query: str) -> duckdb.Statement:
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as error:
        raise QueryRefused(str(error)) from None
    if not statements:
        raise QueryRefused("the query is empty")
    if len(statements) != 1:
        raise QueryRefused(f"give exactly one statement, not {len(statements)}: nothing was run")
    return statements[0]

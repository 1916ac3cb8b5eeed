"""Schema migrations: versioned SQL files (`sql/NN_<stage>.sql`, name order), each applied once per lake.

An applied file is never edited: a change to the schema is a new file. Which files ran is recorded in
`schema_migrations`, so an ordinary connection does no DDL at all (DuckLake would record every
`CREATE OR REPLACE` as a new snapshot).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import duckdb

MIGRATIONS_DIR = Path(__file__).resolve().parent / "sql"
_LEDGER = "schema_migrations"


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def schema_sql() -> str:
    """All DDL in order (for an empty in-memory warehouse that a reader of a fresh home sees)."""
    return "\n".join(path.read_text(encoding="utf-8") for path in migration_files())


def applied(con: duckdb.DuckDBPyConnection) -> set[str]:
    try:
        return {name for (name,) in con.execute(f"SELECT name FROM {_LEDGER}").fetchall()}  # noqa: S608
    except duckdb.CatalogException:
        return set()


def pending(con: duckdb.DuckDBPyConnection) -> list[Path]:
    done = applied(con)
    return [path for path in migration_files() if path.name not in done]


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the files not yet applied, all in one transaction; returns their names."""
    todo = pending(con)
    if not todo:
        return []
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {_LEDGER} (name VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, "
            "applied_at TIMESTAMP NOT NULL)"
        )
        applied_at = datetime.now(UTC).replace(tzinfo=None)
        rows = []
        for path in todo:
            text = path.read_text(encoding="utf-8")
            con.execute(text)
            rows.append((path.name, hashlib.sha256(text.encode()).hexdigest(), applied_at))
        con.executemany(f"INSERT INTO {_LEDGER} VALUES (?, ?, ?)", rows)  # noqa: S608 - constant identifier
    except BaseException:
        con.execute("ROLLBACK")
        raise
    try:
        con.execute("COMMIT")
    except duckdb.TransactionException:
        # two machines sharing a catalog migrated at once and the other committed first (DuckLake: "attempting
        # to create table ... created by another transaction"): the lake is current unless files are still due
        if pending(con):
            raise
        return []
    return [path.name for path in todo]

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
        tables_before = base_tables(con)
        for path in todo:
            text = path.read_text(encoding="utf-8")
            con.execute(text)
            rows.append((path.name, hashlib.sha256(text.encode()).hexdigest(), applied_at))
        give_statistics(con, base_tables(con) - tables_before)
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


def base_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables (not views) of the current database's main schema."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = 'main' AND table_type = 'BASE TABLE'"
    ).fetchall()
    return {name for (name,) in rows}


# A value of each type for a NOT NULL column of the row `give_statistics` inserts (and deletes at once).
_ZERO_BY_TYPE = {
    "VARCHAR": "''",
    "JSON": "'{}'",
    "BOOLEAN": "false",
    "DATE": "'1970-01-01'",
    "TIMESTAMP": "'1970-01-01'",
    "TIMESTAMP WITH TIME ZONE": "'1970-01-01'",
    "INTERVAL": "'0 seconds'",
}
_NUMBERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UBIGINT", "UINTEGER", "FLOAT", "DOUBLE")


def _zero(data_type: str) -> str | None:
    if data_type.endswith("[]"):
        return "[]"
    if data_type in _NUMBERS or data_type.startswith("DECIMAL"):
        return "0"
    return _ZERO_BY_TYPE.get(data_type)


def give_statistics(con: duckdb.DuckDBPyConnection, tables: set[str]) -> None:
    """Give new, empty tables their (zero) statistics, inside the migration's transaction.

    DuckLake plans every query on a table that never held a row with one catalog query per column it reads,
    forever (~5 ms a column on a SQLite catalog: a `SELECT *` of the empty contact book took ~0.24 s of CPU);
    duckdb/ducklake#1313 fixes it upstream, after the extension build pinned here. A row inserted and deleted
    in one transaction writes no data file and leaves the table empty, with its statistics (measured: 73 ms ->
    18 ms a query on the empty `dnc_numbers`). A table with a column type not listed above is left as it is.
    """
    if not tables:
        return
    columns_by_table: dict[str, list[tuple[str, str, str]]] = {}
    for table, name, data_type, nullable in con.execute(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = 'main' ORDER BY table_name, ordinal_position"
    ).fetchall():
        if table in tables:
            columns_by_table.setdefault(table, []).append((name, data_type, nullable))
    for table, columns in columns_by_table.items():
        values = ["NULL" if nullable == "YES" else _zero(data_type) for _, data_type, nullable in columns]
        if None in values:
            continue
        names = ", ".join(f'"{name}"' for name, _, _ in columns)
        cells = ", ".join(
            f"CAST({value} AS {data_type})" for value, (_, data_type, _) in zip(values, columns, strict=True)
        )
        con.execute(f'INSERT INTO "{table}" ({names}) VALUES ({cells})')  # noqa: S608 - names from the catalog
        con.execute(f'DELETE FROM "{table}"')  # noqa: S608 - a table this transaction created, empty before

"""Moving a warehouse from before the lakehouse (`CALLARO_HOME/warehouse.duckdb`) into the lake, once.

Every table of the lake's schema that the old file has is copied by column name in one transaction, and the
row counts are compared before the commit: any difference rolls everything back. The old file is then renamed
`warehouse.duckdb.migrated` (kept, never read again). Views (segments, audiences) are not copied: the lake's
own views and the dbt build make them.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from callaro_pipeline.core.errors import CallaroError

LEGACY_FILE = "warehouse.duckdb"
MIGRATED_SUFFIX = ".migrated"


class MigrationFailed(CallaroError):
    pass


def legacy_warehouse(home: Path) -> Path | None:
    path = home / LEGACY_FILE
    return path if path.is_file() else None


def copy_legacy_tables(con: duckdb.DuckDBPyConnection, legacy: Path) -> dict[str, int]:
    """Copy the old file's tables into the lake session `con` (schema current); returns rows per table."""
    quoted = "'" + str(legacy).replace("'", "''") + "'"
    try:
        con.execute(f"ATTACH {quoted} AS legacy (READ_ONLY)")
    except duckdb.Error as exc:
        raise MigrationFailed(f"cannot open {legacy.name}: {str(exc).splitlines()[0]}") from None
    try:
        return _copy(con)
    finally:
        con.execute("DETACH legacy")


def _copy(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    tables = _common_tables(con)
    con.execute("BEGIN TRANSACTION")
    try:
        copied = {}
        for table, columns in tables.items():
            if con.execute(f'SELECT count(*) FROM lake.main."{table}"').fetchone()[0]:  # noqa: S608
                raise MigrationFailed(f"the lake's table {table} is not empty: nothing was migrated")
            names = ", ".join(f'"{column}"' for column in columns)
            con.execute(f'INSERT INTO lake.main."{table}" ({names}) SELECT {names} FROM legacy.main."{table}"')  # noqa: S608
            before = con.execute(f'SELECT count(*) FROM legacy.main."{table}"').fetchone()[0]  # noqa: S608
            after = con.execute(f'SELECT count(*) FROM lake.main."{table}"').fetchone()[0]  # noqa: S608
            if before != after:
                raise MigrationFailed(f"{table}: {before} rows in {LEGACY_FILE}, {after} in the lake: rolled back")
            copied[table] = after
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return copied


def _common_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Base tables of the lake's main schema that the old file has, with the columns both have."""
    rows = con.execute(
        """
        SELECT l.table_name, list(l.column_name ORDER BY l.ordinal_position)
        FROM information_schema.columns l
        JOIN information_schema.tables lt
          ON lt.table_catalog = l.table_catalog AND lt.table_schema = l.table_schema AND lt.table_name = l.table_name
        JOIN information_schema.columns o
          ON o.table_catalog = 'legacy' AND o.table_schema = 'main' AND o.table_name = l.table_name
         AND o.column_name = l.column_name
        JOIN information_schema.tables ot
          ON ot.table_catalog = 'legacy' AND ot.table_schema = 'main' AND ot.table_name = l.table_name
        WHERE l.table_catalog = 'lake' AND l.table_schema = 'main' AND lt.table_type = 'BASE TABLE'
          AND ot.table_type = 'BASE TABLE' AND l.table_name <> 'schema_migrations'
        GROUP BY l.table_name ORDER BY l.table_name
        """
    ).fetchall()
    return {table: columns for table, columns in rows}


def retire(legacy: Path) -> Path:
    """Rename the migrated file so it is never migrated (or read) again; returns the new path."""
    retired = legacy.with_name(legacy.name + MIGRATED_SUFFIX)
    legacy.replace(retired)
    return retired

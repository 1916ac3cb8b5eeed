"""dbt-duckdb plugin: load the DuckLake extension (and the catalog's scanner) before dbt attaches the lake,
and make the lake every cursor's default database.

profiles.yml names this module; dbt-duckdb calls `configure_connection` before its `attach:` list, so the
extension comes from the installed wheel and dbt works offline like the pipeline (see storage/lake.py). The
project renders relations as `schema.table` (no database: analysts may attach the lake under any name), so
tests and models must resolve them in the lake.
"""

from __future__ import annotations

import os

from dbt.adapters.duckdb.plugins import BasePlugin

from callaro_pipeline.storage.lake import LAKE, load_extensions, thread_limit


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:
        catalog = os.environ.get("CALLARO_DBT_CATALOG", "")
        load_extensions(conn, catalog.split(":", 1)[0] if ":" in catalog else "duckdb")
        threads = thread_limit()
        if threads is not None:
            conn.execute(f"SET threads = {threads}")

    def configure_cursor(self, cursor) -> None:
        cursor.execute(f"USE {LAKE}")

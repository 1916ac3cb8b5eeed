"""`callaro migrate`: move a warehouse file from before the lakehouse into the lake (storage/legacy.py)."""

from __future__ import annotations

import argparse

from callaro_pipeline.cli.arguments import Parser, UsageError
from callaro_pipeline.storage import legacy
from callaro_pipeline.storage.warehouse import Warehouse


def register(commands: Parser) -> None:
    p = commands.add_command(
        "migrate", "move CALLARO_HOME/warehouse.duckdb (before the lakehouse) into the lake, once, counts checked"
    )
    p.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    from callaro_pipeline.cli.runner import run_job

    warehouse = Warehouse()
    old = legacy.legacy_warehouse(warehouse.paths.home)
    if old is None:
        raise UsageError(f"no {legacy.LEGACY_FILE} in {warehouse.paths.home}: nothing to migrate")
    with warehouse.connect() as con:
        copied = legacy.copy_legacy_tables(con, old)
    retired = legacy.retire(old)
    for table, rows in copied.items():
        print(f"  {table:<32} {rows:>12,} rows")
    print(f"migrated {len(copied)} tables into the lake; the old file is kept as {retired.name}")
    rebuilt = run_job("rebuild_segments_and_audiences")
    print("segment views and audiences rebuilt" if rebuilt else "the segment and audience rebuild failed: run it again")
    return 0 if rebuilt else 2

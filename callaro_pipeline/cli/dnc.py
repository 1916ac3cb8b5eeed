"""`callaro dnc add | import`: the Do-Not-Call lists; every audience they change is rebuilt before returning."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from callaro_pipeline.cli.arguments import Parser
from callaro_pipeline.core.errors import UnusableInput
from callaro_pipeline.storage.warehouse import Warehouse


def register(commands: Parser) -> None:
    p = commands.add_command("dnc", "Do-Not-Call lists")
    p.require_command("dnc_command")
    q = p.add_command("add", "add numbers (any format) to a DNC list")
    q.add_argument("phones", nargs="+")
    q.add_argument("--reason")
    q.add_argument("--source", default="internal", help="internal | call_outcome | campaign:<name>")
    q = p.add_command("import", "load a DNC file (CSV with a phone column, 10-digit lines or areacode,number lines)")
    q.add_argument("file")
    q.add_argument("--source", default="internal", help="internal | national | campaign:<name> | call_outcome")
    q.add_argument(
        "--snapshot-date", type=date.fromisoformat, help="date of the registry snapshot (YYYY-MM-DD; default today)"
    )
    q.add_argument("--kind", default="full", choices=("full", "add", "delete"), help="full snapshot or change list")
    q.add_argument(
        "--allow-shrink",
        action="store_true",
        help="confirm that a full snapshot much smaller than the current one is real (else it is refused)",
    )
    p.set_defaults(func=cmd_dnc)


def cmd_dnc(args: argparse.Namespace) -> int:
    """Load, then rebuild every audience the load can change before returning (opt-outs are immediate; the
    read paths already leave listed numbers out even if a rebuild fails or is killed)."""
    from datetime import UTC, datetime

    from callaro_pipeline.storage import dnc_loads
    from callaro_pipeline.storage.audiences import affected_campaigns, rebuild_campaigns

    warehouse = Warehouse()
    with warehouse.transaction() as con:
        if args.dnc_command == "add":
            result = dnc_loads.add_numbers(con, args.phones, source=args.source, reason=args.reason)
        else:
            path = Path(args.file)
            if not path.is_file():
                raise UnusableInput(f"no such file: {path.name}")
            result = dnc_loads.import_dnc_file(
                con,
                path,
                source=args.source,
                snapshot_date=args.snapshot_date,
                kind=args.kind,
                allow_shrink=args.allow_shrink,
            )
        campaigns = affected_campaigns(con, result.load_id if args.dnc_command == "add" else None)
    print(
        f"DNC {result.source}: {result.rows_loaded} numbers loaded, {result.rows_rejected} lines rejected (load {result.load_id})"
    )
    failures = rebuild_campaigns(warehouse, campaigns, now=datetime.now(UTC))
    rebuilt = [name for name in campaigns if name not in failures]
    if rebuilt:
        print(f"audiences rebuilt: {', '.join(rebuilt)}")
    for name, problem in failures.items():
        print(f"audience {name} not rebuilt ({problem}); listed numbers are already out of it")
    return 0

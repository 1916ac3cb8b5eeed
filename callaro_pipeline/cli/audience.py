"""`callaro audience CAMPAIGN [--out FILE] [--windows ...]`: a campaign's callable audience and its windows."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from callaro_pipeline.cli.arguments import Parser, UsageError
from callaro_pipeline.core.config import load_campaign
from callaro_pipeline.core.project_paths import check_name
from callaro_pipeline.storage.warehouse import Warehouse


def register(commands: Parser) -> None:
    p = commands.add_command("audience", "a campaign's callable audience (export with --out)")
    p.add_argument("campaign")
    p.add_argument("--out", help="FILE.csv (formula-safe) or FILE.parquet")
    p.add_argument(
        "--windows",
        action="store_true",
        help="export each member's open calling intervals (contact_id, phone_e164, opens_utc, closes_utc; UTC) "
        "to --out FILE.parquet",
    )
    p.add_argument(
        "--from",
        dest="start",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="with --windows: first day (00:00 UTC; default today)",
    )
    p.add_argument("--days", type=int, help="with --windows: how many days (default 14, at most 730)")
    p.set_defaults(func=cmd_audience)


def cmd_audience(args: argparse.Namespace) -> int:
    from callaro_pipeline.storage.audiences import audience_size, export_audience

    if args.windows:
        return audience_windows(args)
    if args.start is not None or args.days is not None:
        raise UsageError("--from and --days go with --windows")
    load_campaign(check_name(args.campaign, "campaign name"))
    warehouse = Warehouse()
    if args.out:
        with warehouse.read() as con:
            count = export_audience(con, args.campaign, Path(args.out))
        print(f"{count} callable contacts written to {args.out}")
        return 0
    with warehouse.read() as con:
        count, build = audience_size(con, args.campaign)
    print(f"campaign {args.campaign}: {count} callable contacts (build {build})")
    return 0


def audience_windows(args: argparse.Namespace) -> int:
    """`audience CAMPAIGN --windows [--from DAY] [--days N] --out FILE.parquet`: the members' open calling
    intervals (UTC) from DAY 00:00 UTC (default today) for N days (default 14, at most 730)."""
    from datetime import UTC, datetime

    from callaro_pipeline.core.windows import HORIZON_DAYS, MAX_DAYS
    from callaro_pipeline.storage.audiences import export_windows

    days = HORIZON_DAYS if args.days is None else args.days
    if not 1 <= days <= MAX_DAYS:
        raise UsageError(f"--days must be between 1 and {MAX_DAYS}, not {days}")
    if not args.out or Path(args.out).suffix.lower() != ".parquet":
        raise UsageError("--windows needs --out FILE.parquet")
    campaign = load_campaign(check_name(args.campaign, "campaign name"))
    day = args.start or datetime.now(UTC).date()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    with Warehouse().read() as con:
        members, intervals = export_windows(con, campaign, Path(args.out), start=start, days=days)
    print(
        f"{intervals} calling intervals of {members} callable contacts from {day.isoformat()} for {days} days "
        f"written to {args.out}"
    )
    return 0

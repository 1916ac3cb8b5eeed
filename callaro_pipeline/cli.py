"""`callaro`: the command line of the contacts pipeline (see README and the product contract).

Exit codes: 0 imported / done; 1 blocked by a gate or nothing to import (nothing released); 2 unusable input or
usage error (one clear line on stderr, no traceback, nothing written to the contact book).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import sys
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from callaro_pipeline.config import DUPLICATE_POLICIES, PROJECT_ROOT, check_name, load_campaign
from callaro_pipeline.errors import CallaroError, UnusableInput
from callaro_pipeline.warehouse import Warehouse, WarehouseBusy

SAMPLES = PROJECT_ROOT / "data" / "samples"
DEMO_CAMPAIGN = "demo"


class UsageError(CallaroError):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def exit_code_for(summary: dict[str, Any]) -> int:
    if summary["status"] == "imported":
        return 0
    if summary["status"] == "blocked":
        return 1
    return int((summary.get("failure") or {}).get("exit_code", 2))


def report_failure(summary: dict[str, Any]) -> None:
    """A failed upload also says why on stderr, in one line (the summary itself goes to stdout)."""
    message = (summary.get("failure") or {}).get("message")
    if summary["status"] == "failed" and message:
        print(f"callaro: {' '.join(str(message).split())}", file=sys.stderr)


def print_summary(summary: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, default=str, sort_keys=True))
        return
    print(f"upload     {summary['upload_id']}  (campaign {summary['campaign']})")
    print(f"status     {summary['status']}" + ("  [undone]" if summary.get("undone") else ""))
    if summary.get("failure"):
        print(f"problem    {summary['failure'].get('message')}")
    print(
        f"rows read  {summary['rows_read']}   imported {summary['imported']}   rejected {summary['rejected']}   "
        f"duplicates {summary['duplicates']}   suppressed {summary['suppressed']}"
        + (f"   blocked {summary['blocked']}" if summary.get("blocked") else "")
    )
    if summary.get("problems_by_code"):
        print("problems   " + ", ".join(f"{k} {v}" for k, v in sorted(summary["problems_by_code"].items())))
    if summary.get("mapping", {}).get("unmapped"):
        print("unmapped   " + ", ".join(summary["mapping"]["unmapped"]))
    if summary.get("column_drift"):
        drift = summary["column_drift"]
        print(f"drift      added {drift['added']}  missing {drift['missing']}  renamed {drift['renamed']}")
    if summary.get("same_file_as"):
        print(f"note       the same file was already imported as {summary['same_file_as']}")
    for check in summary.get("checks", []):
        print(f"check      {'PASS' if check['passed'] else 'FAIL'}  {check['name']}: {check['detail']}")
    if summary.get("error_report"):
        print(f"errors     {summary['error_report']}")
    if summary.get("merge_conflicts_report"):
        print(f"conflicts  {summary.get('merge_conflicts', 0)} in {summary['merge_conflicts_report']}")
    if summary.get("duplicates_file"):
        print(f"split      {summary['duplicates_file']}")
    if summary.get("data_docs"):
        print(f"data docs  {summary['data_docs']}")
    audience = summary.get("audience")
    if audience:
        line = f"audience   {audience.get('status')}  callable {audience.get('callable', 0)}"
        print(line + (f"  ({audience['reason']})" if audience.get("reason") else ""))


def cmd_import(args: argparse.Namespace) -> int:
    from callaro_pipeline.runner import ImportRequest, run_import

    summary = run_import(
        ImportRequest(
            file=Path(args.file),
            campaign=args.campaign,
            mapping=Path(args.mapping) if args.mapping else None,
            expected_count=args.expected_count,
            default_region=args.default_region,
            duplicates=args.duplicates,
            sheet=args.sheet,
        ),
        progress=not args.json and sys.stderr.isatty(),
    )
    print_summary(summary, as_json=args.json)
    report_failure(summary)
    return exit_code_for(summary)


def cmd_rerun(args: argparse.Namespace) -> int:
    from callaro_pipeline.runner import rerun_upload

    summary = rerun_upload(args.upload_id, progress=not args.json and sys.stderr.isatty())
    print_summary(summary, as_json=args.json)
    report_failure(summary)
    return exit_code_for(summary)


def cmd_report(args: argparse.Namespace) -> int:
    from callaro_pipeline.uploads import upload_summary

    with Warehouse().read() as con:  # read-only: works on a read-only home, touches nothing
        summary = upload_summary(con, args.upload_id)
    print_summary(summary, as_json=args.json)
    return 0


def cmd_uploads(args: argparse.Namespace) -> int:
    """`callaro uploads [--campaign C] [--json]`: every upload, newest first, with status and counts."""
    from callaro_pipeline.uploads import list_uploads

    campaign = check_name(args.campaign, "campaign name") if args.campaign else None
    with Warehouse().read() as con:
        uploads = list_uploads(con, campaign)
    if args.json:
        print(json.dumps(uploads, default=str, sort_keys=True))
        return 0
    if not uploads:
        print("no uploads" + (f" in campaign {campaign}" if campaign else ""))
        return 0
    header = (
        "upload",
        "campaign",
        "received (UTC)",
        "status",
        "read",
        "imported",
        "rejected",
        "dupl.",
        "suppr.",
        "blocked",
    )
    rows = [
        (
            u["upload_id"],
            u["campaign"],
            str(u["received_at"])[:19],
            u["status"] + (" [undone]" if u["undone"] else ""),
            *(
                str(u[k]) if u[k] is not None else "-"
                for k in ("rows_read", "imported", "rejected", "duplicates", "suppressed", "blocked")
            ),
        )
        for u in uploads
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from callaro_pipeline.preview import preview_file

    print(
        preview_file(
            Path(args.file),
            campaign=check_name(args.campaign, "campaign name"),
            mapping=Path(args.mapping) if args.mapping else None,
            rows=args.rows,
            sheet=args.sheet,
            default_region=args.default_region,
        )
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from callaro_pipeline.runner import ImportRequest, run_import, run_job

    samples = sorted(SAMPLES.glob("*.csv"))
    if not samples:
        raise UnusableInput(f"no sample uploads under {SAMPLES}")
    from callaro_pipeline import suppression

    with Warehouse().transaction() as con:
        for dnc_file in sorted((SAMPLES / "dnc").glob("*.csv")):
            loaded = suppression.import_dnc_file(con, dnc_file, source="internal")
            print(f"== DNC list {dnc_file.name}: {loaded.rows_loaded} numbers (internal)")
    run_job("rebuild_segments_and_audiences")
    worst = 0
    for sample in samples:
        print(f"== importing {sample.name} into campaign '{DEMO_CAMPAIGN}'")
        summary = run_import(ImportRequest(file=sample, campaign=DEMO_CAMPAIGN), progress=sys.stderr.isatty())
        print_summary(summary, as_json=False)
        worst = max(worst, exit_code_for(summary))
    print()
    print("Where to look next:")
    print(f"  warehouse (DuckLake; README 'Tables analysts query' has the ATTACH line): {Warehouse().location.catalog}")
    print('     uv run callaro sql "from campaign_audiences limit 5"')
    print("  tables: contacts, campaign_contacts, rejected_rows, uploads, dnc, segments.*, campaign_audiences")
    print("  Dagster UI: uv run callaro ui   (then open http://127.0.0.1:3000, asset group 'ingest')")
    print(f"  audience export: uv run callaro audience {DEMO_CAMPAIGN} --out demo_audience.csv")
    return worst


def cmd_undo(args: argparse.Namespace) -> int:
    from callaro_pipeline.contact_book import undo_upload
    from callaro_pipeline.runner import rebuild_audiences
    from callaro_pipeline.uploads import load_upload, utcnow

    warehouse = Warehouse()
    with warehouse.transaction() as con:
        upload = load_upload(con, args.upload_id)
        if upload.status == "undone":
            print(f"upload {args.upload_id} was already undone: nothing changed")
            return 0
        if upload.status != "imported":
            raise UsageError(f"upload {args.upload_id} was not imported (status {upload.status}): nothing to undo")
        result = undo_upload(con, upload_id=args.upload_id, now=utcnow(), changed_by=_who())
    print(
        f"upload {args.upload_id} undone: {result['unlinked']} contacts taken out of campaign {upload.campaign}, "
        f"{result['removed']} removed from the contact book (in no other campaign)"
    )
    return report_rebuild(rebuild_audiences([upload.campaign]))


def report_rebuild(failed: list[str]) -> int:
    """After a change to the book: exit 1, with the reason on stderr, if an audience could not be rebuilt."""
    for campaign in failed:
        print(
            f"callaro: the audience of campaign {campaign} was not rebuilt (see the campaign_audiences run in the "
            "Dagster UI); its previous build stays current",
            file=sys.stderr,
        )
    return 1 if failed else 0


def cmd_dnc(args: argparse.Namespace) -> int:
    """Load, then rebuild every audience the load can change before returning (opt-outs are immediate; the
    read paths already leave listed numbers out even if a rebuild fails or is killed)."""
    from datetime import UTC, datetime

    from callaro_pipeline import suppression
    from callaro_pipeline.audiences import affected_campaigns, rebuild_campaigns

    warehouse = Warehouse()
    with warehouse.transaction() as con:
        if args.dnc_command == "add":
            result = suppression.add_numbers(con, args.phones, source=args.source, reason=args.reason)
        else:
            path = Path(args.file)
            if not path.is_file():
                raise UnusableInput(f"no such file: {path.name}")
            result = suppression.import_dnc_file(
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


def cmd_audience(args: argparse.Namespace) -> int:
    from callaro_pipeline.audiences import export_audience

    if args.windows:
        return _audience_windows(args)
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
        row = con.execute(
            "SELECT count(*), max(build_id) FROM campaign_audiences WHERE campaign = ?", [args.campaign]
        ).fetchone() or (0, None)
    print(f"campaign {args.campaign}: {row[0]} callable contacts (build {row[1]})")
    return 0


def _audience_windows(args: argparse.Namespace) -> int:
    """`audience CAMPAIGN --windows [--from DAY] [--days N] --out FILE.parquet`: the members' open calling
    intervals (UTC) from DAY 00:00 UTC (default today) for N days (default 14, at most 730)."""
    from datetime import UTC, datetime

    from callaro_pipeline.audiences import export_windows
    from callaro_pipeline.windows import HORIZON_DAYS, MAX_DAYS

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


def _who() -> str:
    return os.environ.get("CALLARO_USER") or os.environ.get("USER") or "cli"


def cmd_contacts(args: argparse.Namespace) -> int:
    from callaro_pipeline.manage import run_contacts_command

    return run_contacts_command(args, changed_by=_who())


def cmd_segment(args: argparse.Namespace) -> int:
    from callaro_pipeline.manage import run_segment_command

    return run_segment_command(args)


def cmd_ui(args: argparse.Namespace) -> int:
    from callaro_pipeline.runner import dagster_instance

    dagster_instance()
    dagster = shutil.which("dagster") or "dagster"
    os.execvp(
        dagster, [dagster, "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="callaro", description="Callaro contacts pipeline: uploads to trusted, callable audiences.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("import", help="import a contacts file into a campaign (one Dagster run)")
    p.add_argument("file", help="CSV, TSV or .xlsx file")
    p.add_argument("--campaign", required=True, help="campaign name (created with defaults if new)")
    p.add_argument("--mapping", help="mapping YAML (source column -> field)")
    p.add_argument("--expected-count", type=int, help="rows the campaign owner expects (a gate)")
    p.add_argument("--default-region", help="region for numbers without +country (default: campaign, else US)")
    p.add_argument("--duplicates", choices=DUPLICATE_POLICIES, help="duplicate policy (default: campaign's)")
    p.add_argument("--sheet", help=".xlsx sheet name (default: first sheet)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("preview", help="dry run: mapping, first rows as imported, problems; writes nothing")
    p.add_argument("file")
    p.add_argument("--campaign", required=True)
    p.add_argument("--mapping")
    p.add_argument("--rows", type=int, default=20)
    p.add_argument("--sheet")
    p.add_argument("--default-region", help="region for numbers without +country (default: campaign, else US)")
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("uploads", help="list uploads with status and counts, newest first")
    p.add_argument("--campaign", help="only this campaign's uploads")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_uploads)

    p = sub.add_parser("rerun", help="run an earlier upload again (e.g. after a killed run); same result as once")
    p.add_argument("upload_id")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("report", help="the import summary of an earlier upload")
    p.add_argument("upload_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("undo", help="take an upload's contacts back out of its campaign")
    p.add_argument("upload_id")
    p.set_defaults(func=cmd_undo)

    p = sub.add_parser("demo", help="import the bundled sample upload(s) into campaign 'demo', end to end")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("dnc", help="Do-Not-Call lists")
    dnc_sub = p.add_subparsers(dest="dnc_command", required=True, parser_class=Parser)
    q = dnc_sub.add_parser("add", help="add numbers (any format) to a DNC list")
    q.add_argument("phones", nargs="+")
    q.add_argument("--reason")
    q.add_argument("--source", default="internal", help="internal | call_outcome | campaign:<name>")
    q = dnc_sub.add_parser(
        "import", help="load a DNC file (CSV with a phone column, 10-digit lines or areacode,number lines)"
    )
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

    p = sub.add_parser("audience", help="a campaign's callable audience (export with --out)")
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

    from callaro_pipeline.manage import add_contacts_parser, add_segment_parser

    add_contacts_parser(sub, cmd_contacts)
    add_segment_parser(sub, cmd_segment)

    p = sub.add_parser("ui", help="open the Dagster UI on this installation (dagster dev)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)
    complete_help(parser)
    return parser


# Help for arguments declared without one (same meaning in every command that has them).
ARGUMENT_HELP = {
    "file": "the file to read (CSV, TSV or .xlsx)",
    "campaign": "campaign name (letters, digits, - and _)",
    "mapping": "mapping YAML (source column -> field); default: the campaign's saved mapping, else by name",
    "rows": "how many rows to show (default: %(default)s)",
    "sheet": ".xlsx sheet name (default: first sheet)",
    "upload_id": "the upload's id, as printed by `callaro import` (see also the uploads table)",
    "json": "print one JSON object instead of text",
    "phones": "phone numbers in any format (E.164, (415) 555-0134, ...)",
    "reason": "why the numbers are added (kept with the entry)",
    "phone": "the contact's phone number, in any format",
    "set": "field to set (repeatable)",
    "out": "output file: .csv (formula-safe) or .parquet",
    "name": "segment name (becomes the dbt model segments.<name>)",
    "host": "address to listen on (default: %(default)s)",
    "port": "port to listen on (default: %(default)s)",
}
EPILOG = (
    "Exit codes: 0 done; 1 blocked by a gate or nothing to import (nothing released); 2 unusable input or usage "
    "error. State lives under CALLARO_HOME (default data/), configuration under CALLARO_CONFIG (default config/)."
)


def complete_help(parser: argparse.ArgumentParser) -> None:
    """Every command gets a description (its one-line help) and every argument a help text, recursively."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                text = helps.get(name, "")
                if not subparser.description and text:
                    subparser.description = text[:1].upper() + text[1:] + "."
                complete_help(subparser)
        elif action.help is None and action.dest in ARGUMENT_HELP:
            action.help = ARGUMENT_HELP[action.dest]
    if parser.prog == "callaro" and parser.epilog is None:
        parser.epilog = EPILOG


def main(argv: list[str] | None = None) -> int:
    # Dagster flags preview features (partitioned asset checks) on every load; users need not see that.
    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", category=UserWarning, message=".*(preview|beta).*")
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except (CallaroError, WarehouseBusy) as error:
        line = " ".join(str(error).split())  # one line, and never a whole echoed value or expression
        print(f"callaro: {line if len(line) <= 500 else line[:500] + '…'}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
    except OSError as error:  # a read-only home, a full disk, a folder we may not write to
        print(f"callaro: {os_error_line(error)}", file=sys.stderr)
        return 2
    except duckdb.IOException as error:  # DuckDB's own write failures (full disk, read-only file)
        line = " ".join(str(error).split())
        print(f"callaro: the warehouse could not be written: {line[:300]}", file=sys.stderr)
        return 2
    except duckdb.Error as error:  # e.g. a read-only home whose warehouse predates this version's schema
        line = " ".join(str(error).split())
        print(f"callaro: the warehouse could not be read: {line[:300]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("callaro: interrupted", file=sys.stderr)
        return 130


def os_error_line(error: OSError) -> str:
    """One line for a file-system failure: what could not be done, where, and the system's reason."""
    reason = error.strerror or type(error).__name__
    where = f" {Path(error.filename).name!r}" if error.filename else ""
    hint = {
        errno.ENOSPC: " (the disk is full: free space and run the command again)",
        errno.EDQUOT: " (the disk quota is used up)",
        errno.EROFS: " (CALLARO_HOME is read-only: only report, uploads, audience and contacts export work on it)",
        errno.EACCES: " (no permission to write there)",
    }.get(error.errno or 0, "")
    return f"cannot write{where}: {reason}{hint}"


if __name__ == "__main__":
    sys.exit(main())

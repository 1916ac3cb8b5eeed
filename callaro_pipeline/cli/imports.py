"""`callaro import | preview | uploads | rerun | report | undo | demo`: uploads and what became of them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callaro_pipeline.cli.arguments import Parser, UsageError, current_user
from callaro_pipeline.cli.output import (
    exit_code_for,
    print_json,
    print_summary,
    print_table,
    report_failure,
    report_rebuild,
)
from callaro_pipeline.core.campaign_settings import DUPLICATE_POLICIES
from callaro_pipeline.core.errors import UnusableInput
from callaro_pipeline.core.project_paths import PROJECT_ROOT, check_name
from callaro_pipeline.storage.warehouse import Warehouse

SAMPLES = PROJECT_ROOT / "data" / "samples"
DEMO_CAMPAIGN = "demo"
UPLOAD_COUNTS = ("rows_read", "imported", "rejected", "duplicates", "suppressed", "blocked")


def register(commands: Parser) -> None:
    p = commands.add_command("import", "import a contacts file into a campaign (one Dagster run)")
    p.add_argument("file", help="CSV, TSV or .xlsx file")
    p.add_argument("--campaign", required=True, help="campaign name (created with defaults if new)")
    p.add_argument("--mapping", help="mapping YAML (source column -> field)")
    p.add_argument("--expected-count", type=int, help="rows the campaign owner expects (a gate)")
    p.add_argument("--default-region", help="region for numbers without +country (default: campaign, else US)")
    p.add_argument("--duplicates", choices=DUPLICATE_POLICIES, help="duplicate policy (default: campaign's)")
    p.add_argument("--sheet", help=".xlsx sheet name (default: first sheet)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--submit",
        action="store_true",
        help="enqueue the run on the Dagster instance of DAGSTER_HOME (run queue + daemon) instead of running it "
        "here; prints the upload id and run id (`callaro report UPLOAD_ID --wait` follows it)",
    )
    p.set_defaults(func=cmd_import)

    p = commands.add_command("preview", "dry run: mapping, first rows as imported, problems; writes nothing")
    p.add_argument("file")
    p.add_argument("--campaign", required=True)
    p.add_argument("--mapping")
    p.add_argument("--rows", type=int, default=20)
    p.add_argument("--sheet")
    p.add_argument("--default-region", help="region for numbers without +country (default: campaign, else US)")
    p.set_defaults(func=cmd_preview)

    p = commands.add_command("uploads", "list uploads with status and counts, newest first")
    p.add_argument("--campaign", help="only this campaign's uploads")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_uploads)

    p = commands.add_command("rerun", "run an earlier upload again (e.g. after a killed run); same result as once")
    p.add_argument("upload_id")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_rerun)

    p = commands.add_command("report", "the import summary of an earlier upload")
    p.add_argument("upload_id")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--wait",
        action="store_true",
        help="a submitted upload: wait until its run has ended, then exit with the import's code (0/1/2)",
    )
    p.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds (exit 2)")
    p.set_defaults(func=cmd_report)

    p = commands.add_command("undo", "take an upload's contacts back out of its campaign")
    p.add_argument("upload_id")
    p.set_defaults(func=cmd_undo)

    p = commands.add_command("demo", "import the bundled sample upload(s) into campaign 'demo', end to end")
    p.set_defaults(func=cmd_demo)


def cmd_import(args: argparse.Namespace) -> int:
    from callaro_pipeline.cli.runner import ImportRequest, run_import

    request = ImportRequest(
        file=Path(args.file),
        campaign=args.campaign,
        mapping=Path(args.mapping) if args.mapping else None,
        expected_count=args.expected_count,
        default_region=args.default_region,
        duplicates=args.duplicates,
        sheet=args.sheet,
    )
    if args.submit:
        from callaro_pipeline.cli.submit import submit_import

        queued = submit_import(request)
        if args.json:
            print_json(queued)
        else:  # one stable line: `queued upload <upload id> run <run id> campaign <campaign>`
            print(f"queued upload {queued['upload_id']} run {queued['run_id']} campaign {queued['campaign']}")
        return 0
    summary = run_import(request, progress=not args.json and sys.stderr.isatty())
    print_summary(summary, as_json=args.json)
    report_failure(summary)
    return exit_code_for(summary)


def cmd_rerun(args: argparse.Namespace) -> int:
    from callaro_pipeline.cli.runner import rerun_upload

    summary = rerun_upload(args.upload_id, progress=not args.json and sys.stderr.isatty())
    print_summary(summary, as_json=args.json)
    report_failure(summary)
    return exit_code_for(summary)


def cmd_report(args: argparse.Namespace) -> int:
    from callaro_pipeline.cli.submit import submitted_report, wait_for
    from callaro_pipeline.storage.uploads import upload_summary

    def load() -> dict:
        with Warehouse().read() as con:  # read-only: works on a read-only home, touches nothing
            return upload_summary(con, args.upload_id)

    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout goes with --wait")
    summary = wait_for(load, timeout=args.timeout) if args.wait else submitted_report(load())
    print_summary(summary, as_json=args.json)
    if not args.wait:
        return 0
    if summary["status"] in ("queued", "running"):
        print(f"callaro: upload {args.upload_id} is still {summary['status']} after {args.timeout:g}s", file=sys.stderr)
        return 2
    return exit_code_for(summary)


def cmd_uploads(args: argparse.Namespace) -> int:
    """`callaro uploads [--campaign C] [--json]`: every upload, newest first, with status and counts."""
    from callaro_pipeline.storage.uploads import list_uploads

    campaign = check_name(args.campaign, "campaign name") if args.campaign else None
    with Warehouse().read() as con:
        uploads = list_uploads(con, campaign)
    if args.json:
        print_json(uploads)
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
            *(str(u[k]) if u[k] is not None else "-" for k in UPLOAD_COUNTS),
        )
        for u in uploads
    ]
    print_table(header, rows)
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from callaro_pipeline.cli.preview import preview_file

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
    from datetime import UTC, datetime

    from callaro_pipeline.cli.runner import ImportRequest, run_import
    from callaro_pipeline.storage import dnc_loads
    from callaro_pipeline.storage.audiences import affected_campaigns, rebuild_campaigns

    samples = sorted(SAMPLES.glob("*.csv"))
    if not samples:
        raise UnusableInput(f"no sample uploads under {SAMPLES}")
    warehouse = Warehouse()
    with warehouse.transaction() as con:
        for dnc_file in sorted((SAMPLES / "dnc").glob("*.csv")):
            loaded = dnc_loads.import_dnc_file(con, dnc_file, source="internal")
            print(f"== DNC list {dnc_file.name}: {loaded.rows_loaded} numbers (internal)")
        campaigns = affected_campaigns(con)
    # as `dnc import` does: the audiences the lists can change, rebuilt (the segment views are always current:
    # the first import makes them, no dbt build needed)
    rebuild_campaigns(warehouse, campaigns, now=datetime.now(UTC))
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
    from callaro_pipeline.cli.runner import rebuild_audiences
    from callaro_pipeline.storage.contact_book import undo_upload
    from callaro_pipeline.storage.uploads import load_upload, utcnow

    warehouse = Warehouse()
    with warehouse.transaction() as con:
        upload = load_upload(con, args.upload_id)
        if upload.status == "undone":
            print(f"upload {args.upload_id} was already undone: nothing changed")
            return 0
        if upload.status != "imported":
            raise UsageError(f"upload {args.upload_id} was not imported (status {upload.status}): nothing to undo")
        result = undo_upload(con, upload_id=args.upload_id, now=utcnow(), changed_by=current_user())
    print(
        f"upload {args.upload_id} undone: {result['unlinked']} contacts taken out of campaign {upload.campaign}, "
        f"{result['removed']} removed from the contact book (in no other campaign)"
    )
    return report_rebuild(rebuild_audiences([upload.campaign]))

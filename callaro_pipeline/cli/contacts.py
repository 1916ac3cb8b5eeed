"""`callaro contacts add | update | remove | export`: manual and bulk management, through the same gates.

`add` is a one-row upload; `update` and `remove` act on a filtered set, show the matching count first and only
change with `--yes`; every change is recorded in `contact_changes` and the affected audiences are rebuilt.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from callaro_pipeline.cli.arguments import Parser, current_user
from callaro_pipeline.cli.manage import checked_changes, selection_by_ids, where_conditions, write_one_row_upload
from callaro_pipeline.cli.output import exit_code_for, print_summary, report_rebuild
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.project_paths import check_name
from callaro_pipeline.storage.warehouse import Warehouse

CHANGE_COMMANDS = (("update", "set fields on the matching contacts"), ("remove", "remove the matching contacts"))


def register(commands: Parser) -> None:
    p = commands.add_command("contacts", "add, update, remove or export contacts (same gates as uploads)")
    p.require_command("contacts_command")
    q = p.add_command("add", "add one contact to a campaign (a one-row upload through every gate)")
    q.add_argument("--campaign", required=True)
    q.add_argument("--phone", required=True)
    q.add_argument("--field", action="append", metavar="FIELD=VALUE", help="standard or custom field (repeatable)")
    q.add_argument("--json", action="store_true")
    for name, text in CHANGE_COMMANDS:
        q = p.add_command(name, text + " (dry-run count unless --yes)")
        q.add_argument("--where", required=True, help='e.g. "lead_source = webinar and state in (CA,NY)"')
        if name == "update":
            q.add_argument("--set", action="append", required=True, metavar="FIELD=VALUE")
        else:
            q.add_argument(
                "--campaign",
                help="take the matching contacts out of this campaign only (they stay in the book and in other "
                "campaigns)",
            )
        q.add_argument("--yes", action="store_true", help="apply the change (default: only count)")
    q = p.add_command("export", "export the matching contacts (formula-safe CSV or parquet)")
    q.add_argument("--where", help="filter (default: every contact)")
    q.add_argument("--out", required=True)
    p.set_defaults(func=cmd_contacts)


def cmd_contacts(args: argparse.Namespace) -> int:
    if args.contacts_command == "add":
        return contacts_add(args)
    if args.contacts_command == "export":
        return contacts_export(args)
    return contacts_change(args)


def field_values(values: list[str] | None, option: str) -> dict[str, str]:
    """`--field k=v` / `--set k=v` values as a dict."""
    pairs = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} expects field=value, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def contacts_add(args: argparse.Namespace) -> int:
    from callaro_pipeline.cli.runner import ImportRequest, run_import

    fields = {"phone": args.phone, **field_values(args.field, "--field")}
    with tempfile.TemporaryDirectory(prefix="callaro-add-") as tmp:
        upload, mapping = write_one_row_upload(Path(tmp), fields)
        summary = run_import(ImportRequest(file=upload, campaign=args.campaign, mapping=mapping, manual=True))
    print_summary(summary, as_json=args.json)
    return exit_code_for(summary)


def contacts_change(args: argparse.Namespace) -> int:
    from callaro_pipeline.cli.runner import rebuild_audiences
    from callaro_pipeline.storage.contact_book import remove_contacts, update_contacts
    from callaro_pipeline.storage.contact_edits import matching_contact_ids, remove_from_campaign
    from callaro_pipeline.storage.uploads import utcnow

    conditions = where_conditions(args.where)
    dry_run = not args.yes
    changed_by = current_user()
    with Warehouse().transaction() as con:
        matched = matching_contact_ids(con, conditions)
        selected = selection_by_ids(matched)
        if args.contacts_command == "update":
            change = update_contacts(
                con,
                selected,
                checked_changes(field_values(args.set, "--set")),
                now=utcnow(),
                changed_by=changed_by,
                dry_run=dry_run,
            )
        elif getattr(args, "campaign", None):
            change = remove_from_campaign(
                con,
                check_name(args.campaign, "campaign name"),
                matched,
                now=utcnow(),
                changed_by=changed_by,
                dry_run=dry_run,
            )
        else:
            change = remove_contacts(con, selected, now=utcnow(), changed_by=changed_by, dry_run=dry_run)
    verb = "would change" if dry_run else "changed"
    print(
        f"{change.contacts} contacts {verb} ({args.contacts_command}); campaigns: {', '.join(change.campaigns) or '-'}"
    )
    if dry_run:
        print("dry run: add --yes to apply")
    elif change.contacts:
        return report_rebuild(rebuild_audiences(change.campaigns))
    return 0


def contacts_export(args: argparse.Namespace) -> int:
    from callaro_pipeline.core.report import write_atomically, write_csv_safely
    from callaro_pipeline.storage.contact_book import find_contacts
    from callaro_pipeline.storage.contact_edits import matching_contact_ids
    from callaro_pipeline.storage.suppression import drop_listed_other_phones

    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise ConfigError("--out must end in .csv or .parquet")
    conditions = where_conditions(args.where)
    with Warehouse().read() as con:  # read-only: works on a read-only home, touches nothing
        found = find_contacts(con, selection_by_ids(matching_contact_ids(con, conditions)) if conditions else [])
        # an export never offers an other number that is on any DNC list now (listed after it was stored)
        found = drop_listed_other_phones(con, found, None).drop("other_phones_suppressed", strict=False)
    if out.suffix.lower() == ".parquet":
        write_atomically(out, found.write_parquet)
    else:
        text_only = found.with_columns(
            found.get_column(c).list.join("|") if found.schema[c].is_nested() else found.get_column(c).cast(str)
            for c in found.columns
        )
        write_csv_safely(text_only, out)
    print(f"{found.height} contacts written to {out}")
    return 0

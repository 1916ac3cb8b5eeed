"""`callaro contacts ...` and `callaro segment ...`: manual and bulk management, through the same gates.

`contacts add` is a one-row upload (same landing, validation, gates and DNC scrub as a file); `update` and
`remove` act on a filtered set, show the matching count first and only change with `--yes`; every change is
recorded in `contact_changes` and the affected campaigns' audiences are rebuilt.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path
from typing import Any

import yaml

from callaro_pipeline.config import STANDARD_FIELDS, check_name, dbt_project_dir, load_custom_fields
from callaro_pipeline.errors import ConfigError
from callaro_pipeline.warehouse import Warehouse


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    pairs = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} expects field=value, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _conditions(where: str | None) -> list[tuple[str, str, Any]]:
    """Filters of `contacts update|remove|export`: the segment fields plus the contact book's own columns
    (names, phone, e-mail, contact_id, lineage), so a single person can be picked."""
    from callaro_pipeline.contact_book import FILTERABLE_FIELDS
    from callaro_pipeline.segments import parse_where

    if not where:
        return []
    book_fields = dict.fromkeys(FILTERABLE_FIELDS, "text")
    return [(c.field, c.operator, c.value) for c in parse_where(where, load_custom_fields(), extra_fields=book_fields)]


def _checked_changes(changes: dict[str, str]) -> dict[str, str]:
    """Values set by hand pass the same rules as imported ones."""
    if changes.get("timezone"):
        import polars as pl

        from callaro_pipeline.timezones import parse_timezone_text

        parsed = parse_timezone_text(pl.Series([changes["timezone"]]))
        if parsed.get_column("tz_error")[0] is not None or len(parsed.get_column("tz_candidates")[0]) != 1:
            raise ConfigError("timezone must be an IANA name, abbreviation or UTC offset")
        changes["timezone"] = parsed.get_column("tz_candidates")[0][0]
    if changes.get("consent"):
        import polars as pl

        from callaro_pipeline.validation import _consent

        consent = pl.select(_consent(pl.lit(changes["consent"].strip(), dtype=pl.Utf8))).item()
        if consent is None:
            raise ConfigError("consent must be yes, no or unknown (or a synonym such as opt-in / opt-out)")
        changes["consent"] = consent
    if changes.get("consent_date"):
        from datetime import UTC, datetime

        import polars as pl

        from callaro_pipeline.validation import consent_date_value

        parsed = pl.select(consent_date_value(pl.lit(changes["consent_date"], dtype=pl.Utf8))).item()
        if parsed is None or parsed > datetime.now(UTC).date():
            raise ConfigError("consent_date must be a real date, not in the future (YYYY-MM-DD or MM/DD/YYYY)")
        changes["consent_date"] = parsed.isoformat()
    if changes.get("email"):
        from email_validator import EmailNotValidError, validate_email

        try:
            changes["email"] = validate_email(changes["email"], check_deliverability=False).normalized
        except EmailNotValidError:
            raise ConfigError("email is not a valid address") from None
    return changes


def contacts_add(args: argparse.Namespace) -> int:
    from callaro_pipeline.cli import exit_code_for, print_summary
    from callaro_pipeline.runner import ImportRequest, run_import

    fields = {"phone": args.phone, **_pairs(args.field, "--field")}
    registry = load_custom_fields()
    columns: dict[str, str] = {}
    for name in fields:
        target = name if name in STANDARD_FIELDS else f"custom.{name.removeprefix('custom.')}"
        if target.startswith("custom.") and target.removeprefix("custom.") not in registry:
            raise ConfigError(f"unknown field {name!r}: not a standard field nor a declared custom field")
        columns[name] = target
    with tempfile.TemporaryDirectory(prefix="callaro-add-") as tmp:
        upload = Path(tmp) / "manual_contact.csv"
        with upload.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(list(fields))
            writer.writerow(list(fields.values()))
        mapping = Path(tmp) / "mapping.yaml"
        mapping.write_text(yaml.safe_dump({"columns": columns}), encoding="utf-8")
        summary = run_import(ImportRequest(file=upload, campaign=args.campaign, mapping=mapping, manual=True))
    print_summary(summary, as_json=args.json)
    return exit_code_for(summary)


def _rebuild(campaigns: list[str]) -> int:
    from callaro_pipeline.cli import report_rebuild
    from callaro_pipeline.runner import rebuild_audiences

    return report_rebuild(rebuild_audiences(campaigns))


def contacts_change(args: argparse.Namespace, *, changed_by: str) -> int:
    from callaro_pipeline.contact_book import remove_contacts, update_contacts
    from callaro_pipeline.uploads import utcnow

    conditions = _conditions(args.where)
    dry_run = not args.yes
    with Warehouse().transaction() as con:
        if args.contacts_command == "update":
            change = update_contacts(
                con,
                conditions,
                _checked_changes(_pairs(args.set, "--set")),
                now=utcnow(),
                changed_by=changed_by,
                dry_run=dry_run,
            )
        else:
            change = remove_contacts(con, conditions, now=utcnow(), changed_by=changed_by, dry_run=dry_run)
    verb = "would change" if dry_run else "changed"
    print(
        f"{change.contacts} contacts {verb} ({args.contacts_command}); campaigns: {', '.join(change.campaigns) or '-'}"
    )
    if dry_run:
        print("dry run: add --yes to apply")
    elif change.contacts:
        return _rebuild(change.campaigns)
    return 0


def contacts_export(args: argparse.Namespace) -> int:
    from callaro_pipeline.contact_book import find_contacts
    from callaro_pipeline.report import write_csv_safely

    with Warehouse().connect() as con:
        found = find_contacts(con, _conditions(args.where))
    out = Path(args.out)
    if out.suffix.lower() == ".parquet":
        found.write_parquet(out)
    elif out.suffix.lower() == ".csv":
        flat = found.with_columns(
            [
                found.get_column(c).cast(str)
                if found.schema[c].is_nested() is False
                else found.get_column(c).list.join("|")
                for c in found.columns
            ]
        )
        write_csv_safely(flat, out)
    else:
        raise ConfigError("--out must end in .csv or .parquet")
    print(f"{found.height} contacts written to {out}")
    return 0


def run_contacts_command(args: argparse.Namespace, *, changed_by: str) -> int:
    if args.contacts_command == "add":
        return contacts_add(args)
    if args.contacts_command == "export":
        return contacts_export(args)
    return contacts_change(args, changed_by=changed_by)


def run_segment_command(args: argparse.Namespace) -> int:
    from callaro_pipeline import segments

    if args.segment_command == "list":
        for item in segments.list_segments(dbt_project_dir()):
            print(f"{item['name']:<32} {item['kind']:<7} {item.get('where') or item.get('description') or ''}")
        return 0
    name = check_name(args.name, "segment name").replace("-", "_")
    registry = load_custom_fields()
    conditions = segments.parse_where(args.where, registry)
    warehouse = Warehouse()
    with warehouse.transaction() as con:
        size = segments.preview_segment_size(con, conditions)
        if args.dry_run:
            print(f"segment {name} would hold {size} contacts (dry run: nothing written)")
            return 0
        path = segments.create_filter_segment(con, name, args.where, dbt_dir=dbt_project_dir(), registry=registry)
    segments.build_models(warehouse, select=[name], dbt_dir=dbt_project_dir())
    print(f"segment {name}: {size} contacts; model {path}; query it as segments.{name}")
    return 0


def add_contacts_parser(sub: Any, handler: Any) -> None:
    p = sub.add_parser("contacts", help="add, update, remove or export contacts (same gates as uploads)")
    csub = p.add_subparsers(dest="contacts_command", required=True, parser_class=type(p))
    q = csub.add_parser("add", help="add one contact to a campaign (a one-row upload through every gate)")
    q.add_argument("--campaign", required=True)
    q.add_argument("--phone", required=True)
    q.add_argument("--field", action="append", metavar="FIELD=VALUE", help="standard or custom field (repeatable)")
    q.add_argument("--json", action="store_true")
    for name, text in (("update", "set fields on the matching contacts"), ("remove", "remove the matching contacts")):
        q = csub.add_parser(name, help=text + " (dry-run count unless --yes)")
        q.add_argument("--where", required=True, help='e.g. "lead_source = webinar and state in (CA,NY)"')
        if name == "update":
            q.add_argument("--set", action="append", required=True, metavar="FIELD=VALUE")
        q.add_argument("--yes", action="store_true", help="apply the change (default: only count)")
    q = csub.add_parser("export", help="export the matching contacts (formula-safe CSV or parquet)")
    q.add_argument("--where", help="filter (default: every contact)")
    q.add_argument("--out", required=True)
    p.set_defaults(func=handler)


def add_segment_parser(sub: Any, handler: Any) -> None:
    p = sub.add_parser("segment", help="filter segments (become dbt models in the segments schema)")
    ssub = p.add_subparsers(dest="segment_command", required=True, parser_class=type(p))
    q = ssub.add_parser("create", help="turn a filtered view into a reusable segment")
    q.add_argument("name")
    q.add_argument("--where", required=True, help='e.g. "lead_source = webinar and custom.plan_tier = enterprise"')
    q.add_argument("--dry-run", action="store_true", help="only show how many contacts it would hold")
    ssub.add_parser("list", help="every segment: SQL models and filter segments")
    p.set_defaults(func=handler)

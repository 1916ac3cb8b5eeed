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

from callaro_pipeline.config import check_name, dbt_project_dir, load_custom_fields
from callaro_pipeline.errors import ConfigError
from callaro_pipeline.schema import STANDARD_FIELDS
from callaro_pipeline.warehouse import Warehouse


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    pairs = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} expects field=value, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _conditions(where: str | None) -> list[Any]:
    """Filters of `contacts update|remove|export`: the one filter language of segments (callaro_pipeline.filters),
    whose fields include the contact book's own columns (names, phone, e-mail, contact_id, lineage)."""
    from callaro_pipeline.filters import parse_where

    return parse_where(where, load_custom_fields()) if where else []


def matching_contact_ids(con: Any, conditions: list[Any]) -> list[str]:
    """The contacts a `--where` selects, compiled by the filter language exactly as a segment's view is."""
    from callaro_pipeline.filters import bound_select_sql

    sql, params = bound_select_sql(conditions)
    rows = con.execute(f"SELECT contact_id FROM ({sql}) AS matched ORDER BY contact_id", params).fetchall()  # noqa: S608
    return [contact_id for (contact_id,) in rows]


def _by_id(ids: list[str]) -> list[tuple[str, str, Any]]:
    """The selection handed to the contact book: exactly the matched ids (the filter was compiled once, by the
    filter language); no match is a condition nobody meets (contact_id is never empty), so the contact book
    still checks the rest of the command (e.g. --set fields)."""
    return [("contact_id", "in", ids)] if ids else [("contact_id", "is_null", None)]


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
        matched = matching_contact_ids(con, conditions)
        selected = _by_id(matched)
        if args.contacts_command == "update":
            change = update_contacts(
                con,
                selected,
                _checked_changes(_pairs(args.set, "--set")),
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
        return _rebuild(change.campaigns)
    return 0


def remove_from_campaign(
    con: Any, campaign: str, contact_ids: list[str], *, now: Any, changed_by: str, dry_run: bool
) -> Any:
    """`contacts remove --campaign C --where W`: take the matching contacts out of campaign C only. They stay in
    the contact book and in every other campaign; each unlinking is recorded in `contact_changes` (action
    `campaign_remove`, with the campaign). Only C's audience changes."""
    import json
    import uuid

    from callaro_pipeline.contact_book import BookChange
    from callaro_pipeline.warehouse import stage

    stage(con, "_matched_ids", pl_frame(contact_ids))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _campaign_targets AS SELECT DISTINCT contact_id FROM campaign_contacts "
        "WHERE campaign = ? AND contact_id IN (SELECT contact_id FROM _matched_ids)",
        [campaign],
    )
    con.unregister("_matched_ids")
    (count,) = con.execute("SELECT count(*) FROM _campaign_targets").fetchone()
    if not dry_run and count:
        con.execute(
            "INSERT INTO contact_changes SELECT ?, ?, ?, 'campaign_remove', contact_id, ?, NULL, ?::JSON "
            "FROM _campaign_targets",
            [uuid.uuid4().hex, now, changed_by, campaign, json.dumps({"matched": count})],
        )
        con.execute(
            "DELETE FROM campaign_contacts WHERE campaign = ? "
            "AND contact_id IN (SELECT contact_id FROM _campaign_targets)",
            [campaign],
        )
    con.execute("DROP TABLE _campaign_targets")
    return BookChange(contacts=count, campaigns=[campaign] if count else [])


def pl_frame(contact_ids: list[str]) -> Any:
    import polars as pl

    return pl.DataFrame({"contact_id": contact_ids}, schema={"contact_id": pl.Utf8})


def contacts_export(args: argparse.Namespace) -> int:
    from callaro_pipeline.contact_book import find_contacts
    from callaro_pipeline.report import write_csv_safely
    from callaro_pipeline.suppression import drop_listed_other_phones

    conditions = _conditions(args.where)
    with Warehouse().read() as con:  # read-only: works on a read-only home, touches nothing
        found = find_contacts(con, _by_id(matching_contact_ids(con, conditions)) if conditions else [])
        # an export never offers an other number that is on any DNC list now (listed after it was stored)
        found = drop_listed_other_phones(con, found, None).drop("other_phones_suppressed", strict=False)
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


def _segment_views_ready(warehouse: Warehouse) -> None:
    """The staging and segment views exist (a fresh home, before or after its first import): made from the
    compiled dbt manifest, compiling it first if there is none yet."""
    from callaro_pipeline import segments

    home = warehouse.paths.home
    with warehouse.connect() as con:
        if segments.views_missing(con):
            segments.create_missing_views(con, home=home)
        ready = not segments.views_missing(con)
    if not ready:
        from callaro_pipeline.assets.segments import ensure_manifest, make_project

        ensure_manifest(make_project(home=home), home=home)
        with warehouse.connect() as con:
            segments.create_missing_views(con, home=home)
            ready = not segments.views_missing(con)
    if not ready:
        raise ConfigError("the segment views could not be made: run `dbt build` on dbt_contacts (see its README)")


def run_segment_command(args: argparse.Namespace) -> int:
    from callaro_pipeline import segments

    warehouse = Warehouse()
    home = warehouse.paths.home
    if args.segment_command == "list":
        items = segments.list_segments(dbt_project_dir(), home)
        for item in items:
            detail = item.get("where") or item.get("description") or ""
            print(f"{item['name']:<32} {item['kind']:<7} {detail[:200]}")
        if not items:
            print("no segments yet: callaro segment create NAME --where ...")
        return 0
    name = segments.check_segment_name(check_name(args.name, "segment name").replace("-", "_"))
    if args.segment_command == "delete":
        with warehouse.transaction() as con:
            segments.delete_filter_segment(con, name, home=home)
        print(f"segment {name} deleted (definition, model and view)")
        return 0
    registry = load_custom_fields()
    conditions = segments.parse_where(args.where, registry)
    if args.dry_run:
        with warehouse.connect() as con:
            size = segments.preview_segment_size(con, conditions)
        print(f"segment {name} would hold {size} contacts (dry run: nothing written)")
        return 0
    _segment_views_ready(warehouse)
    with warehouse.transaction() as con:
        size = segments.preview_segment_size(con, conditions)
        path = segments.create_filter_segment(con, name, args.where, home=home, registry=registry)
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
        else:
            q.add_argument(
                "--campaign",
                help="take the matching contacts out of this campaign only (they stay in the book and in other "
                "campaigns)",
            )
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
    q = ssub.add_parser("delete", help="delete a filter segment (its definition, dbt model and view)")
    q.add_argument("name")
    p.set_defaults(func=handler)

"""`callaro segment create | list | delete`: filter segments (they become dbt models in the segments schema)."""

from __future__ import annotations

import argparse

from callaro_pipeline.cli.arguments import Parser
from callaro_pipeline.cli.output import print_segment_list
from callaro_pipeline.core.config import load_custom_fields
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.filter_parser import parse_where
from callaro_pipeline.core.project_paths import check_name, dbt_project_dir
from callaro_pipeline.storage.warehouse import Warehouse


def register(commands: Parser) -> None:
    p = commands.add_command("segment", "filter segments (become dbt models in the segments schema)")
    p.require_command("segment_command")
    q = p.add_command("create", "turn a filtered view into a reusable segment")
    q.add_argument("name")
    q.add_argument("--where", required=True, help='e.g. "lead_source = webinar and custom.plan_tier = enterprise"')
    q.add_argument("--dry-run", action="store_true", help="only show how many contacts it would hold")
    p.add_command("list", "every segment: SQL models and filter segments")
    q = p.add_command("delete", "delete a filter segment (its definition, dbt model and view)")
    q.add_argument("name")
    p.set_defaults(func=cmd_segment)


def cmd_segment(args: argparse.Namespace) -> int:
    from callaro_pipeline.core.segments import check_segment_name, list_segments
    from callaro_pipeline.storage import segments

    warehouse = Warehouse()
    home = warehouse.paths.home
    if args.segment_command == "list":
        print_segment_list(list_segments(dbt_project_dir(), home))
        return 0
    name = check_segment_name(check_name(args.name, "segment name").replace("-", "_"))
    if args.segment_command == "delete":
        with warehouse.transaction() as con:
            segments.delete_filter_segment(con, name, home=home)
        print(f"segment {name} deleted (definition, model and view)")
        return 0
    registry = load_custom_fields()
    conditions = parse_where(args.where, registry)
    if args.dry_run:
        with warehouse.connect() as con:
            size = segments.preview_segment_size(con, conditions)
        print(f"segment {name} would hold {size} contacts (dry run: nothing written)")
        return 0
    segment_views_ready(warehouse)
    with warehouse.transaction() as con:
        size = segments.preview_segment_size(con, conditions)
        path = segments.create_filter_segment(con, name, args.where, home=home, registry=registry)
    print(f"segment {name}: {size} contacts; model {path}; query it as segments.{name}")
    return 0


def segment_views_ready(warehouse: Warehouse) -> None:
    """The staging and segment views exist (a fresh home, before or after its first import): made from the
    compiled dbt manifest, compiling it first if there is none yet."""
    from callaro_pipeline.storage.segments import views_made

    home = warehouse.paths.home
    if views_made(warehouse):
        return
    from callaro_pipeline.defs.segments.assets import ensure_manifest, make_project

    ensure_manifest(make_project(home=home), home=home)
    if not views_made(warehouse):
        raise ConfigError("the segment views could not be made: run `dbt build` on dbt_contacts (see its README)")

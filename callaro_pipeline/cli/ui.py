"""`callaro ui`: the Dagster UI on this installation."""

from __future__ import annotations

import argparse
import os
import shutil

from callaro_pipeline.cli.arguments import Parser
from callaro_pipeline.core.project_paths import PROJECT_ROOT


def register(commands: Parser) -> None:
    p = commands.add_command("ui", "open the Dagster UI on this installation (dagster dev)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    from callaro_pipeline.cli.runner import dagster_instance

    dagster_instance()
    dagster = shutil.which("dagster") or "dagster"
    os.execvp(
        dagster, [dagster, "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    )
    return 0

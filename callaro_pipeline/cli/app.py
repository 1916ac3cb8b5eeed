"""`callaro`: the parser assembled from the command groups, and `main` with its one-line error handling.

Exit codes: 0 imported / done; 1 blocked by a gate or nothing to import (nothing released); 2 unusable input or
usage error (one clear line on stderr, no traceback, nothing written to the contact book).
"""

from __future__ import annotations

import errno
import sys
import warnings
from pathlib import Path

from callaro_pipeline.cli import audience, contacts, dnc, imports, migrate, segments, sql, ui
from callaro_pipeline.cli.arguments import Parser
from callaro_pipeline.cli.output import one_line, shortened
from callaro_pipeline.core.errors import CallaroError
from callaro_pipeline.storage.warehouse import EngineError, EngineWriteError, WarehouseBusy

# the order of `callaro --help`
COMMAND_GROUPS = (imports, dnc, audience, contacts, segments, sql, migrate, ui)
EPILOG = (
    "Exit codes: 0 done; 1 blocked by a gate or nothing to import (nothing released); 2 unusable input or usage "
    "error. State lives under CALLARO_HOME (default data/), configuration under CALLARO_CONFIG (default config/)."
)


def build_parser() -> Parser:
    parser = Parser(
        prog="callaro",
        description="Callaro contacts pipeline: uploads to trusted, callable audiences.",
        epilog=EPILOG,
    )
    parser.require_command("command")
    for group in COMMAND_GROUPS:
        group.register(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Dagster flags preview features (partitioned asset checks) on every load; users need not see that.
    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", category=UserWarning, message=".*(preview|beta).*")
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except (CallaroError, WarehouseBusy) as error:
        # one line, and never a whole echoed value or expression
        print(f"callaro: {shortened(one_line(error), 500)}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
    except OSError as error:  # a read-only home, a full disk, a folder we may not write to
        print(f"callaro: {os_error_line(error)}", file=sys.stderr)
        return 2
    except EngineWriteError as error:  # DuckDB's own write failures (full disk, read-only file)
        print(f"callaro: the warehouse could not be written: {one_line(error)[:300]}", file=sys.stderr)
        return 2
    except EngineError as error:  # e.g. a read-only home whose warehouse predates this version's schema
        print(f"callaro: the warehouse could not be read: {one_line(error)[:300]}", file=sys.stderr)
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

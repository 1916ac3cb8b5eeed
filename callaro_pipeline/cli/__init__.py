"""The `callaro` command line (console script `callaro_pipeline.cli:main`), one module per command group:

`app` (parser assembly, `main`, one-line errors), `arguments` (the parser class), `output` (everything printed),
`imports`, `dnc`, `audience`, `contacts`, `segments`, `sql`, `ui` (each registers its commands and runs them).

The package itself imports nothing: the side process of `callaro import` (core/gx_side_process.py) is spawned,
so it runs the `callaro` script's `from callaro_pipeline.cli import main` again, and must not import Dagster.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """`callaro_pipeline.cli.app.main`, imported when called."""
    from callaro_pipeline.cli.app import main as run

    return run(argv)


__all__ = ["main"]

"""The `callaro` command line (console script `callaro_pipeline.cli:main`), one module per command group:

`app` (parser assembly, `main`, one-line errors), `arguments` (the parser class), `output` (everything printed),
`imports`, `dnc`, `audience`, `contacts`, `segments`, `sql`, `ui` (each registers its commands and runs them).
"""

from callaro_pipeline.cli.app import build_parser, main

__all__ = ["build_parser", "main"]

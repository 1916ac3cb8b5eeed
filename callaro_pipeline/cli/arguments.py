"""The parser class every `callaro` command is built with: usage errors as exceptions (one line, exit 2), a
description for every command and a help text for every argument, without argparse's private internals."""

from __future__ import annotations

import argparse
import os
from typing import Any

from callaro_pipeline.core.errors import CallaroError

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


class UsageError(CallaroError):
    pass


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of exiting, keeps its sub-commands (`commands`) and its
    arguments (`arguments`) for the help checks, and fills in the help of arguments declared without one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.commands: dict[str, Parser] = {}
        self.arguments: list[argparse.Action] = []
        self.command_choices: Any = None
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.help is None and action.dest in ARGUMENT_HELP:
            action.help = ARGUMENT_HELP[action.dest]
        self.arguments.append(action)
        return action

    def require_command(self, dest: str) -> None:
        """This parser takes a required sub-command, whose name is stored in `dest`; add them with add_command."""
        self.command_choices = self.add_subparsers(dest=dest, required=True, parser_class=Parser)

    def add_command(self, name: str, help_text: str) -> Parser:
        """A sub-command `name` (after require_command); its description is its one-line help as a sentence."""
        parser = self.command_choices.add_parser(name, help=help_text, description=_sentence(help_text))
        self.commands[name] = parser
        return parser


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "." if text else ""


def current_user() -> str:
    """Who changes the contact book from this command line (recorded with every change)."""
    return os.environ.get("CALLARO_USER") or os.environ.get("USER") or "cli"

"""Packaging habits, run by the README's test command: lint, formatting, types, and `--help` on every command.

ruff and mypy are configured in pyproject.toml ([tool.ruff], [tool.mypy]).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from callaro_pipeline.cli import build_parser, main
from callaro_pipeline.cli.arguments import Parser
from callaro_pipeline.core.project_paths import PROJECT_ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy", "callaro_pipeline")],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_code_quality(command: tuple[str, ...]) -> None:
    done = _run(*command)
    assert done.returncode == 0, f"`{' '.join(command)}` failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


def test_the_architecture_contracts_hold() -> None:
    """import-linter (pyproject [tool.importlinter]): the pure core imports neither Dagster nor a database, storage
    knows nothing of the wiring above it, nothing below the command line imports it."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint_imports)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _commands(parser: Parser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the CLI: (), ("import",), ("dnc",), ("dnc", "add"), ..."""
    paths = [prefix]
    for name, subparser in parser.commands.items():
        paths += _commands(subparser, (*prefix, name))
    return paths


COMMANDS = _commands(build_parser())


def test_every_contract_command_is_there() -> None:
    names = {path[0] for path in COMMANDS if path}
    assert names >= {"import", "preview", "undo", "demo", "report", "dnc", "audience", "contacts", "segment", "ui"}
    assert {("dnc", "add"), ("dnc", "import"), ("segment", "create"), ("segment", "list")} <= set(COMMANDS)
    assert {("contacts", verb) for verb in ("add", "update", "remove", "export")} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda path: " ".join(path) or "callaro")
def test_help_is_clear(command: tuple[str, ...], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"usage: {' '.join(('callaro', *command))}"), out[:200]
    assert err == ""
    # a sentence saying what the command does, and a help text for every argument
    parser = build_parser()
    for name in command:
        parser = parser.commands[name]
    assert parser.description, f"`callaro {' '.join(command)}` has no description"
    assert parser.description.split("\n")[0] in " ".join(out.split())
    for action in parser.arguments:  # sub-commands are not arguments: each has its own help
        assert action.help, f"`callaro {' '.join(command)}`: argument {action.dest!r} has no help text"


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH (the README's commands need it)")
def test_uv_run_is_quiet_on_stderr() -> None:
    """`uv run` in a synced environment prints nothing of its own (no "Bytecode compiled N files", uv#12202)."""
    result = subprocess.run(
        ["uv", "run", "--frozen", "python", "-c", "pass"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "Bytecode compiled" not in result.stderr

"""Packaging habits, run by the README's test command: lint, formatting, types, and `--help` on every command.

ruff and mypy are configured in pyproject.toml ([tool.ruff], [tool.mypy]).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from callaro_pipeline.cli.app import build_parser, main
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


PACKAGE = PROJECT_ROOT / "callaro_pipeline"
MODULE_LINE_LIMIT = 400
ASSET_BODY_LINE_LIMIT = 40
ASSET_DECORATORS = ("asset", "multi_asset", "asset_check", "multi_asset_check", "dbt_assets")


def _modules(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def test_no_module_is_over_400_lines() -> None:
    """A module past 400 lines holds more than one idea: split it by what it is about."""
    offenders = {}
    for path in _modules(PACKAGE):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MODULE_LINE_LIMIT:
            offenders[str(path.relative_to(PROJECT_ROOT))] = lines
    assert not offenders, f"modules over {MODULE_LINE_LIMIT} lines: " + ", ".join(
        f"{name} ({lines})" for name, lines in sorted(offenders.items(), key=lambda item: -item[1])
    )


def _decorator_name(decorator: ast.expr) -> str:
    """`asset`, `dg.asset`, `dg.asset(...)`, `dbt_assets(manifest=...)`: the last name of what is called."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Name):
        return target.id
    return ""


def _asset_bodies(path: Path) -> list[tuple[str, int]]:
    """(name, body lines) of every function decorated as a Dagster asset or check; the docstring counts."""
    bodies = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if any(_decorator_name(d).endswith(ASSET_DECORATORS) for d in node.decorator_list):
            end = node.end_lineno or node.body[-1].lineno
            bodies.append((node.name, end - node.body[0].lineno + 1))
    return bodies


def test_no_asset_or_check_body_is_over_40_lines() -> None:
    """An asset or check body wires: it reads its inputs, calls named rules (core) and queries (storage), and
    returns; past 40 lines the work belongs in those functions."""
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}::{name} ({lines})"
        for path in _modules(PACKAGE / "defs")
        for name, lines in _asset_bodies(path)
        if lines > ASSET_BODY_LINE_LIMIT
    ]
    assert not offenders, f"asset/check bodies over {ASSET_BODY_LINE_LIMIT} lines: " + ", ".join(offenders)


def test_the_asset_body_rule_sees_every_decorator_form(tmp_path: Path) -> None:
    """The counting rule itself: bare, attribute and called decorators are seen; other functions are not."""
    source = (
        "import dagster as dg\n"
        "@dg.asset(name='a')\ndef a():\n    '''doc'''\n    x = 1\n    return x\n"
        "@asset_check\ndef b():\n    pass\n"
        "@dbt_assets(manifest=m)\ndef c():\n    pass\n"
        "@dg.multi_asset_check(specs=[])\ndef d():\n    pass\n"
        "def helper():\n    pass\n"
    )
    path = tmp_path / "probe.py"
    path.write_text(source, encoding="utf-8")
    assert _asset_bodies(path) == [("a", 3), ("b", 1), ("c", 1), ("d", 1)]


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private_imports(path: Path, root: Path = PROJECT_ROOT) -> list[tuple[str, str, str]]:
    """(this module, other project module, name) for every `_name` taken from another project module, by
    `from module import _name` or by `module._name` on a module imported by name."""
    here = _module_name(path, root)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    modules: dict[str, str] = {}  # local name -> project module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "callaro_pipeline":
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__") and node.module != here:
                    found.append((here, node.module, alias.name))
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "callaro_pipeline" and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in modules and modules[owner.id] != here:
                found.append((here, modules[owner.id], node.attr))
    return found


def test_no_module_imports_a_private_name_of_another() -> None:
    """A name one module needs from another is public there: `_name` means "only this module uses it"."""
    offenders = [
        f"{here} takes {name} from {module}"
        for path in _modules(PACKAGE)
        for here, module, name in _private_imports(path)
    ]
    assert not offenders, "private names used across modules: " + "; ".join(offenders)


def test_the_private_import_rule_sees_both_forms(tmp_path: Path) -> None:
    package = tmp_path / "callaro_pipeline"
    package.mkdir()
    probe = package / "probe.py"
    probe.write_text(
        "from callaro_pipeline.core import mapping\n"
        "from callaro_pipeline.core.problems import _cut, cut_text\n"
        "from callaro_pipeline.probe import _mine\n"
        "mapping._shown('x')\nmapping.__name__\n",
        encoding="utf-8",
    )
    assert _private_imports(probe, tmp_path) == [
        ("callaro_pipeline.probe", "callaro_pipeline.core.problems", "_cut"),
        ("callaro_pipeline.probe", "callaro_pipeline.core.mapping", "_shown"),
    ]


# duckdb connection methods that run SQL; no polars `.sql` is used outside storage (it would be caught too)
SQL_METHODS = frozenset({"execute", "executemany", "sql", "query"})


def _sql_calls(path: Path) -> list[str]:
    """`line: name` of every call of an SQL-running method (`con.execute(...)`, `con.sql(...)`, ...) in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        f"{node.lineno}: .{node.func.attr}("
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_METHODS
    ]


def test_only_storage_runs_sql() -> None:
    """The wiring and the command line get a connection from storage and hand it to a named storage function;
    they never run a statement on it themselves."""
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}:{call}"
        for path in _modules(PACKAGE)
        if "storage" not in path.relative_to(PACKAGE).parts
        for call in _sql_calls(path)
    ]
    assert not offenders, "SQL run outside callaro_pipeline/storage/: " + ", ".join(offenders)


def test_the_sql_rule_sees_every_method(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "con.execute('x')\ncon.sql('x')\ncon.executemany('x', [])\nwith w.read() as c:\n    c.query('x')\n"
        "execute('x')\nframe.select('x')\n",
        encoding="utf-8",
    )
    assert _sql_calls(probe) == ["1: .execute(", "2: .sql(", "3: .executemany(", "5: .query("]

"""`callaro import` progress: stage by stage with row counts on a terminal, silent with --json or without one."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from callaro_pipeline.cli import runner
from callaro_pipeline.cli.app import main
from callaro_pipeline.core.project_paths import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data" / "samples" / "demo_contacts.csv"


class Terminal(io.StringIO):
    """stderr as a terminal would be: isatty() is true."""

    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_shows_each_stage_with_its_rows(
    callaro_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["import", str(SAMPLE), "--campaign", "spring"]) == 0
    lines = [line.strip() for line in terminal.getvalue().splitlines()]
    assert lines[0].startswith("importing upload spring-")
    expected = [
        ("✓ raw_upload", "62 rows"),
        ("✓ mapped_contacts", "62 rows"),
        ("✓ validated_contacts", "57 rows"),
        ("✓ rejected_rows", "3 rows rejected"),
        ("✓ suppressed_contacts", "12 suppressed"),
        ("✓ contacts", "45 imported"),
        ("✓ campaign_audiences", "1 audience(s) built"),
    ]
    for stage, count in expected:
        assert any(line.startswith(stage + " ") and line.endswith(count) for line in lines), (stage, lines)
    for gate in ("pandera_validated_contacts", "great_expectations_upload", "dnc_lists_usable"):
        assert any(line.startswith(f"✓ gate {gate} passed") for line in lines), (gate, lines)
    # stages in flow order; the summary itself still goes to stdout
    order = [next(i for i, line in enumerate(lines) if line.startswith(stage)) for stage, _ in expected]
    assert order == sorted(order)
    assert "status     imported" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv_tail", "tty", "progress"),
    [([], True, True), (["--json"], True, False), ([], False, False), (["--json"], False, False)],
    ids=["terminal", "terminal-json", "pipe", "pipe-json"],
)
def test_progress_only_on_a_terminal_without_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, argv_tail: list[str], tty: bool, progress: bool
) -> None:
    seen: dict[str, Any] = {}

    def fake_run_import(request: runner.ImportRequest, *, progress: bool = False) -> dict[str, Any]:
        seen["progress"] = progress
        return {"upload_id": "u-1", "campaign": "spring", "status": "imported", "rows_read": 1, "imported": 1,
                "rejected": 0, "duplicates": 0, "suppressed": 0, "error_report": None, "checks": []}  # fmt: skip

    monkeypatch.setattr(runner, "run_import", fake_run_import)
    stderr = Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    assert main(["import", str(SAMPLE), "--campaign", "spring", *argv_tail]) == 0
    assert seen["progress"] is progress
    assert stderr.getvalue() == ""


def _event(kind: str, **data: Any) -> SimpleNamespace:
    return SimpleNamespace(
        event_type_value=kind, step_key=data.pop("step_key", None), event_specific_data=SimpleNamespace(**data)
    )


def test_progress_lines_for_a_blocked_upload() -> None:
    failed_gate = _event(
        "ASSET_CHECK_EVALUATION",
        passed=False,
        check_name="great_expectations_upload",
        description="62 rows read but 500 were expected",
    )
    assert runner.progress_line(failed_gate) == (
        "  ✗ gate great_expectations_upload FAILED: 62 rows read but 500 were expected"
    )
    assert runner.progress_line(_event("STEP_SKIPPED", step_key="contacts")) == (
        "  - contacts skipped (an upstream gate or step failed)"
    )
    assert runner.progress_line(_event("STEP_FAILURE", step_key="raw_upload")) == "  ✗ raw_upload failed"
    assert runner.progress_line(_event("STEP_START", step_key="raw_upload")) is None


def test_the_progress_handler_prints_only_dagster_events(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = runner.StageProgress()
    handler.emit(logging.LogRecord("dagster", logging.INFO, __file__, 1, "plain message", None, None))
    record = logging.LogRecord("dagster", logging.DEBUG, __file__, 1, "event", None, None)
    record.dagster_meta = {"dagster_event": _event("STEP_SKIPPED", step_key="contacts")}
    handler.emit(record)
    assert terminal.getvalue() == "  - contacts skipped (an upstream gate or step failed)\n"

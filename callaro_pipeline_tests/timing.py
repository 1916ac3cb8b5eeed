"""Where the suite's time goes: `CALLARO_SUITE_TIMES=PATH uv run pytest` writes each test file's wall time and
CPU time (user + system, of the test process and of the subprocesses it waited for) to PATH as JSON, longest
first, with the worker that ran it and when its first test started and its last ended (seconds after the first
test of the run: how well the workers were balanced). The suite is CPU-bound on CI's two cores, so its CPU is
the figure to cut (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import resource
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_CPU_PROPERTY = "cpu_seconds_"
_figures: defaultdict[str, dict[str, float]] = defaultdict(lambda: {"seconds": 0.0, "cpu_seconds": 0.0})


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(item: pytest.Item, when: str) -> Iterator[None]:
    """The phase's CPU time travels to the controller on its report (xdist sends user_properties along)."""
    started = _cpu_seconds()
    try:
        yield
    finally:
        item.user_properties.append((_CPU_PROPERTY + when, _cpu_seconds() - started))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _timed(item, "setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _timed(item, "call"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    return (yield from _timed(item, "teardown"))


_spans: dict[str, dict[str, Any]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    module = module_of(report.nodeid)
    figures = _figures[module]
    figures["seconds"] += report.duration
    figures["cpu_seconds"] += dict(report.user_properties).get(_CPU_PROPERTY + report.when, 0.0)
    span = _spans.setdefault(module, {"worker": None, "start": report.start, "stop": report.stop})
    span["start"], span["stop"] = min(span["start"], report.start), max(span["stop"], report.stop)
    gateway = getattr(getattr(report, "node", None), "gateway", None)  # xdist: the worker that sent the report
    span["worker"] = getattr(gateway, "id", span["worker"])


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("CALLARO_SUITE_TIMES")
    if target and not hasattr(session.config, "workerinput"):  # the controller has every worker's reports
        ordered = sorted(_figures.items(), key=lambda kv: -kv[1]["seconds"])
        first = min((span["start"] for span in _spans.values()), default=0.0)
        rounded = {
            name: {
                **{key: round(value, 1) for key, value in figures.items()},
                **_span_of(_spans[name], first),
            }
            for name, figures in ordered
        }
        Path(target).write_text(json.dumps(rounded, indent=1) + "\n", encoding="utf-8")


def _span_of(span: dict[str, Any], first: float) -> dict[str, Any]:
    return {
        "worker": span["worker"],
        "started": round(span["start"] - first, 1),
        "ended": round(span["stop"] - first, 1),
    }

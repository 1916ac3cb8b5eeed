"""Test files run longest first, so that the last file a worker starts is a short one.

`--dist loadfile` keeps a file's tests on one worker and, with `--no-loadscope-reorder`, hands the files out in
collection order. xdist's own order (most tests first) started the several-machines file (one test, two
minutes) last: one worker ran for ~160 s after the others had finished. The order here comes from
`module_seconds.json`, each file's wall time on a full run of the suite; `CALLARO_SUITE_TIMES=PATH uv run
pytest` writes the figures of a run to PATH. A file missing from it runs after the measured ones.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

MEASURED = Path(__file__).with_name("module_seconds.json")
_seconds: defaultdict[str, float] = defaultdict(float)


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    measured = json.loads(MEASURED.read_text(encoding="utf-8")) if MEASURED.is_file() else {}
    # a stable sort: each file's tests stay together and in their order
    items.sort(key=lambda item: -measured.get(module_of(item.nodeid), 0.0))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _seconds[module_of(report.nodeid)] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("CALLARO_SUITE_TIMES")
    if target and not hasattr(session.config, "workerinput"):  # the controller has every worker's reports
        by_time = dict(sorted(((name, round(s, 1)) for name, s in _seconds.items()), key=lambda kv: -kv[1]))
        Path(target).write_text(json.dumps(by_time, indent=1) + "\n", encoding="utf-8")

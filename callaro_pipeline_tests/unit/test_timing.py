"""The suite's own time recorder (timing.py): each file's wall and CPU time, from the reports of every phase."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from callaro_pipeline_tests import timing


def report(nodeid: str, when: str, seconds: float, cpu: float, start: float, worker: str) -> SimpleNamespace:
    # a phase's report carries the CPU of every phase so far, as an item's user_properties do
    earlier = [("cpu_seconds_setup", 9.0)] if when != "setup" else []
    return SimpleNamespace(
        nodeid=nodeid,
        when=when,
        duration=seconds,
        start=start,
        stop=start + seconds,
        node=SimpleNamespace(gateway=SimpleNamespace(id=worker)),
        user_properties=[*earlier, (f"cpu_seconds_{when}", cpu)],
    )


def test_a_runs_figures_are_each_files_wall_and_cpu_time_longest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timing, "_figures", defaultdict(lambda: {"seconds": 0.0, "cpu_seconds": 0.0}))
    monkeypatch.setattr(timing, "_spans", {})
    for phase in (
        report("a.py::one", "setup", 1.0, 0.5, 100.0, "gw0"),
        report("a.py::one", "call", 2.0, 1.5, 101.0, "gw0"),
        report("b.py::one[x]", "call", 4.0, 0.25, 100.5, "gw1"),
        report("a.py::two", "teardown", 0.5, 0.5, 110.0, "gw0"),
    ):
        timing.pytest_runtest_logreport(phase)  # type: ignore[arg-type]
    target = tmp_path / "times.json"
    monkeypatch.setenv("CALLARO_SUITE_TIMES", str(target))
    timing.pytest_sessionfinish(SimpleNamespace(config=SimpleNamespace()))  # type: ignore[arg-type]
    written = json.loads(target.read_text(encoding="utf-8"))
    assert list(written) == ["b.py", "a.py"]
    assert written["a.py"] == {"seconds": 3.5, "cpu_seconds": 2.5, "worker": "gw0", "started": 0.0, "ended": 10.5}
    assert written["b.py"] == {"seconds": 4.0, "cpu_seconds": 0.2, "worker": "gw1", "started": 0.5, "ended": 4.5}


def test_each_phase_records_the_cpu_it_spent() -> None:
    item = SimpleNamespace(user_properties=[])
    phase = timing._timed(item, "call")  # type: ignore[arg-type]
    next(phase)
    sum(i * i for i in range(200_000))
    with pytest.raises(StopIteration):
        next(phase)
    ((name, seconds),) = item.user_properties
    assert name == "cpu_seconds_call" and seconds > 0

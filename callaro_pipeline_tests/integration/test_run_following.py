"""`callaro report --wait` follows a submitted upload's run on the DAGSTER_HOME instance (cli/submit.py)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from callaro_pipeline.cli.submit import wait_for


@dg.op
def noop() -> None:
    pass


@dg.job
def probe() -> None:
    noop()


def test_waiting_opens_the_instance_once_and_follows_the_run_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.from_config(str(home))
    run = instance.create_run_for_job(probe, status=dg.DagsterRunStatus.NOT_STARTED)

    opened: list[str] = []
    from_config = dg.DagsterInstance.from_config

    def counted(config_dir: str, *args: object, **kwargs: object) -> dg.DagsterInstance:
        opened.append(config_dir)
        return from_config(config_dir, *args, **kwargs)

    monkeypatch.setattr(dg.DagsterInstance, "from_config", staticmethod(counted))
    polls: list[int] = []

    def load_summary() -> dict:
        polls.append(1)
        if len(polls) == 3:  # the run ends between the second and the third poll
            instance.report_run_failed(instance.get_run_by_id(run.run_id), "worker lost")
        # a registered upload not imported yet is `failed` in its summary; the run's state says queued or running
        return {"upload_id": "u1", "status": "failed", "submitted": {"run_id": run.run_id}}

    summary = wait_for(load_summary, timeout=60, poll_seconds=0.01)
    instance.dispose()
    assert len(polls) == 3 and opened == [str(home)]
    assert summary["status"] == "failed" and summary["run_status"] == "FAILURE"
    assert "ended FAILURE before the import finished" in summary["failure"]["message"]

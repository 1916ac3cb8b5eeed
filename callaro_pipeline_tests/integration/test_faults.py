"""Faults: a sensor tick that crashes, an import killed between stages, and the re-run that repairs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from callaro_pipeline.core.project_paths import PROJECT_ROOT
from callaro_pipeline.defs.automation import sensors
from callaro_pipeline.storage.warehouse import Warehouse

SAMPLE = PROJECT_ROOT / "data" / "samples" / "demo_contacts.csv"


def _tick(warehouse: Warehouse) -> dg.SensorResult:
    from callaro_pipeline.definitions import loaded_definitions

    defs = loaded_definitions()

    with dg.build_sensor_context(resources={"warehouse": warehouse}) as context:
        return defs.get_sensor_def("vendor_drop_folder_sensor")(context)


def _drop(home: Path) -> Path:
    folder = home / "inbox" / "vendor"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "daily.csv"
    path.write_bytes(SAMPLE.read_bytes())
    return path


def _uploads(warehouse: Warehouse) -> list[tuple]:
    with warehouse.connect() as con:
        return con.execute("SELECT upload_id, sha256 FROM uploads WHERE campaign = 'vendor'").fetchall()


def test_sensor_crash_after_landing_requests_the_same_run_on_the_next_tick(
    callaro_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tick landed and registered the file, then died before returning its run requests."""
    warehouse = Warehouse()
    _drop(callaro_env)
    real_land = sensors.land_dropped_file
    landed: list[str] = []

    def land_then_crash(store: Warehouse, dropped: sensors.DroppedFile) -> str:
        landed.append(real_land(store, dropped))
        raise RuntimeError("sensor process killed mid-tick")

    monkeypatch.setattr(sensors, "land_dropped_file", land_then_crash)
    with pytest.raises(Exception, match="killed mid-tick"):
        _tick(warehouse)
    monkeypatch.setattr(sensors, "land_dropped_file", real_land)
    result = _tick(warehouse)
    again = _tick(warehouse)  # and the tick after that asks for the same run too (Dagster skips a known run_key)
    (request,) = result.run_requests
    assert request.partition_key == landed[0]
    assert again.run_requests[0].run_key == request.run_key
    assert again.run_requests[0].partition_key == landed[0]
    assert result.dynamic_partitions_requests[0].partition_keys == [landed[0]]
    assert [upload_id for upload_id, _ in _uploads(warehouse)] == [landed[0]]


def test_sensor_crash_between_storing_and_registering_loses_nothing(
    callaro_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tick stored the bytes but died before the upload row was written: the next tick imports the file
    once, under the same run_key (the half-landed folder has no upload row and is never run)."""
    warehouse = Warehouse()
    _drop(callaro_env)
    real_register = sensors.register_upload

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("sensor process killed before registering")

    monkeypatch.setattr(sensors, "register_upload", crash)
    with pytest.raises(Exception, match="before registering"):
        _tick(warehouse)
    assert _uploads(warehouse) == []
    monkeypatch.setattr(sensors, "register_upload", real_register)
    first = _tick(warehouse)
    second = _tick(warehouse)
    (request,) = first.run_requests
    assert second.run_requests[0].run_key == request.run_key
    assert second.run_requests[0].partition_key == request.partition_key
    assert [upload_id for upload_id, _ in _uploads(warehouse)] == [request.partition_key]


# --- an import killed between stages ---------------------------------------------------------------------------

TABLES = ("contacts", "campaign_contacts", "rejected_rows", "validated_contacts", "suppressed_contacts")


def _state(warehouse: Warehouse, upload_id: str) -> dict:
    """What an import leaves behind, without ids and times that differ between two homes."""
    with warehouse.connect() as con:
        state = {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}  # noqa: S608
        state["contacts_rows"] = con.execute(
            "SELECT * EXCLUDE (first_upload_id, last_upload_id, created_at, updated_at) FROM contacts ORDER BY 1"
        ).fetchall()
        state["rejected"] = con.execute(
            'SELECT row_number, "column", field, code, message, value FROM rejected_rows ORDER BY ALL'
        ).fetchall()
        state["links"] = con.execute(
            "SELECT campaign, contact_id, row_number FROM campaign_contacts ORDER BY ALL"
        ).fetchall()
        state["checks"] = con.execute("SELECT name, passed FROM upload_checks ORDER BY name").fetchall()
        state["audience"] = con.execute(
            "SELECT contact_id, phone_e164 FROM campaign_audiences WHERE campaign = 'spring' ORDER BY ALL"
        ).fetchall()
        status, counts = con.execute(
            "SELECT status, [rows_read, imported, rejected, duplicates, suppressed] FROM uploads WHERE upload_id = ?",
            [upload_id],
        ).fetchone()
        state["upload"] = (status, counts)
    return state


def _use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    (home / "dagster").mkdir(parents=True)
    monkeypatch.setenv("CALLARO_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))


@pytest.mark.slow
def test_import_killed_between_stages_then_rerun_equals_one_clean_import(
    callaro_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callaro_pipeline.cli.runner import ImportRequest, rerun_upload, run_import

    # the import that will be killed runs in its own process, in its own home; the process does not see the
    # session's patched defaults, so the installation's compliance owner says them (_defaults.yaml)
    killed_home = tmp_path / "killed"
    _use_home(monkeypatch, killed_home)
    defaults = Path(os.environ["CALLARO_CONFIG"]) / "campaigns" / "_defaults.yaml"
    defaults.write_text("require_national_dnc: false\nrequire_consent: false\n", encoding="utf-8")
    warehouse = Warehouse()
    proc = subprocess.Popen(
        [sys.executable, "-m", "callaro_pipeline.cli", "import", str(SAMPLE), "--campaign", "spring", "--json"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        upload_id = None
        while upload_id is None:
            assert proc.poll() is None, "the import finished before it could be killed"
            assert time.monotonic() < deadline, "validated_contacts never materialized"
            # holding the writer lock freezes the import at its next warehouse access: kill it there
            with warehouse.connect() as con:
                row = con.execute(
                    "SELECT upload_id FROM uploads WHERE json_extract(summary, '$.valid_rows') IS NOT NULL"
                ).fetchone()
                if row is not None:
                    upload_id = row[0]
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(timeout=30)
                    # between stages: validated, nothing released to the book yet
                    assert con.execute("SELECT count(*) FROM validated_contacts").fetchone()[0] > 0
                    assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 0
                    assert con.execute("SELECT count(*) FROM campaign_contacts").fetchone()[0] == 0
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with warehouse.connect() as con:
        assert con.execute("SELECT status FROM uploads").fetchall() == [("registered",)]

    summary = rerun_upload(upload_id)
    assert summary["status"] == "imported", summary
    rerun_state = _state(warehouse, upload_id)
    from callaro_pipeline.cli.runner import dagster_instance

    runs = dagster_instance().get_runs(filters=dg.RunsFilter(tags={"callaro/upload_id": upload_id}))
    # the killed run no longer shows as running: it is marked failed, next to the successful re-run
    assert sorted(run.status.value for run in runs) == ["FAILURE", "SUCCESS"]

    # the same file imported once, cleanly, into a fresh home
    _use_home(monkeypatch, tmp_path / "clean")
    clean = run_import(ImportRequest(file=SAMPLE, campaign="spring"))
    assert clean["status"] == "imported"
    clean_state = _state(Warehouse(), clean["upload_id"])
    assert rerun_state == clean_state
    for key in ("rows_read", "imported", "rejected", "duplicates", "suppressed", "problems_by_code"):
        assert summary[key] == clean[key], key
    # 12 consent "no" rows are suppressed (revocation), the unreadable-zone row is kept
    assert json.dumps(rerun_state["upload"]) == json.dumps(["imported", [62, 45, 3, 2, 12]])


def test_runs_of_dead_processes_are_failed_and_free_their_pool_slot(callaro_env: Path) -> None:
    """A killed in-process run would hold the `duckdb` pool slot forever and block every later run."""
    from dagster._core.storage.dagster_run import DagsterRun

    from callaro_pipeline.cli.runner import PID_TAG, dagster_instance, release_abandoned_runs

    instance = dagster_instance()
    storage = instance.event_log_storage
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    dead, live = f"{host}:{gone.stdout.strip()}", f"{host}:{os.getpid()}"
    elsewhere = f"other-{host}:{gone.stdout.strip()}"  # a process on another machine sharing the home
    storage.set_concurrency_slots("duckdb", 1)
    runs = {}
    for name, pid in (("killed", dead), ("running", live), ("elsewhere", elsewhere)):
        run = instance.add_run(
            DagsterRun(job_name="import_upload", status=dg.DagsterRunStatus.STARTED, tags={PID_TAG: pid})
        )
        runs[name] = run.run_id
    assert storage.claim_concurrency_slot("duckdb", runs["killed"], "validated_contacts").is_claimed
    assert release_abandoned_runs(instance) == [runs["killed"]]
    assert instance.get_run_by_id(runs["killed"]).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(runs["running"]).status == dg.DagsterRunStatus.STARTED
    assert instance.get_run_by_id(runs["elsewhere"]).status == dg.DagsterRunStatus.STARTED
    assert storage.claim_concurrency_slot("duckdb", runs["running"], "raw_upload").is_claimed


def test_rerun_of_an_unknown_upload_is_a_one_line_usage_error(callaro_env: Path, capsys: pytest.CaptureFixture) -> None:
    from callaro_pipeline.cli.app import main

    assert main(["rerun", "spring-20260101t000000-deadbeef-000000"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("callaro: unknown upload") and len(err.strip().splitlines()) == 1
    assert main(["rerun", "../etc"]) == 2
    assert "invalid upload id" in capsys.readouterr().err

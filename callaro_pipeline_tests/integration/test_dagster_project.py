"""The Dagster code location as the UI loads it, the drop-folder sensor, automation after a UI Materialize,
concurrency and the read-only copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from callaro_pipeline.core.project_paths import PROJECT_ROOT
from callaro_pipeline.core.uploads import UploadOptions
from callaro_pipeline.defs.contact_book.assets import REQUIRED_GATES
from callaro_pipeline.defs.instance_storage import (
    EventLogStorageReusingEngines,
    RunStorageReusingEngines,
    ScheduleStorageReusingEngines,
    reused_engine,
)
from callaro_pipeline.defs.partitions import UPLOADS
from callaro_pipeline.storage.uploads import register_upload, upload_summary
from callaro_pipeline.storage.warehouse import Warehouse
from callaro_pipeline_tests.conftest import install_callaro_env, open_lake

SAMPLE = PROJECT_ROOT / "data" / "samples" / "demo_contacts.csv"


def test_definitions_validate_as_the_ui_loads_them(callaro_env: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the project's dg code location name is the workspace's (else a warning for every module of defs/)
    assert "does not match the name" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]


def test_assets_are_grouped_by_stage_and_described() -> None:
    from callaro_pipeline.definitions import loaded_definitions

    defs = loaded_definitions()

    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups["raw_upload"] == "ingest"
    assert groups["validated_contacts"] == groups["rejected_rows"] == "validate"
    assert groups["suppressed_contacts"] == "suppress"
    assert groups["contacts"] == "contact_book"
    assert groups["campaign_audiences"] == "audiences"
    assert any(group == "segments" for group in groups.values())
    for key in graph.get_all_asset_keys():
        assert graph.get(key).description, f"{key} has no description"
    checks = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    for name in ("pandera_validated_contacts", "great_expectations_upload", "dnc_lists_usable"):
        assert checks[name].blocking, name
        assert checks[name].description


def _drop(home: Path, campaign: str, name: str, content: bytes) -> Path:
    folder = home / "inbox" / campaign
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


def test_drop_folder_sensor_keys_runs_on_content(callaro_env: Path) -> None:
    from callaro_pipeline.definitions import loaded_definitions

    defs = loaded_definitions()

    sensor = defs.get_sensor_def("vendor_drop_folder_sensor")
    warehouse = Warehouse()
    _drop(callaro_env, "vendor", "daily.csv", SAMPLE.read_bytes())
    with dg.build_sensor_context(resources={"warehouse": warehouse}) as context:
        first = sensor(context)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.partition_key.startswith("vendor-")
    assert first.dynamic_partitions_requests[0].partition_keys == [request.partition_key]
    # the same bytes again (e.g. a crash before the tick was saved): same run_key, same upload, no new landing
    with dg.build_sensor_context(resources={"warehouse": warehouse}) as context:
        again = sensor(context)
    assert again.run_requests[0].run_key == request.run_key
    assert again.run_requests[0].partition_key == request.partition_key
    # a corrected file under the same name: a new run_key
    _drop(callaro_env, "vendor", "daily.csv", SAMPLE.read_bytes() + b"CUST-9,Zed,Ray,,(415) 201-3344,,,,,,,\r\n")
    with dg.build_sensor_context(resources={"warehouse": warehouse}) as context:
        corrected = sensor(context)
    assert corrected.run_requests[0].run_key != request.run_key
    with warehouse.connect() as con:
        assert con.execute("SELECT count(*) FROM uploads WHERE campaign = 'vendor'").fetchone()[0] == 2


def test_sensor_and_schedule_are_off_by_default() -> None:
    from callaro_pipeline.definitions import loaded_definitions

    defs = loaded_definitions()

    assert defs.get_sensor_def("vendor_drop_folder_sensor").default_status == dg.DefaultSensorStatus.STOPPED
    assert defs.get_schedule_def("daily_vendor_feed_schedule").default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.mark.slow
def test_an_import_and_a_dbt_build_at_once_both_succeed_while_an_analyst_reads(
    callaro_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import in another process and a dbt build here, started together, both succeed; an analyst reads the
    lake meanwhile, each read answered without waiting for either (at most for a commit being written). Two
    import processes at once are integration/test_lake_concurrency.py's."""
    from callaro_pipeline.cli.runner import run_job

    monkeypatch.setenv("CALLARO_DEBUG", "1")  # a failure here is a race worth reading in full (synthetic data)
    with Warehouse().connect():
        pass  # the installation exists (its lake created) before anyone reads it
    stop, reads, problems = threading.Event(), [], []

    def analyst() -> None:
        # a session kept open, as an analyst's is, and every tenth read a new one (attaching while writers
        # commit): a new session per read would mostly measure loading the extensions
        con = None
        while not stop.is_set():
            try:
                started = time.monotonic()
                if len(reads) % 10 == 0:
                    if con is not None:
                        con.close()
                    con = open_lake(callaro_env)
                con.execute("SELECT count(*) FROM uploads").fetchone()
                reads.append(time.monotonic() - started)
            except Exception as error:  # reported by the test, not lost in the thread
                problems.append(error)
            stop.wait(0.5)
        if con is not None:
            con.close()

    reader = threading.Thread(target=analyst, daemon=True)
    reader.start()
    importer = subprocess.Popen(
        [sys.executable, "-m", "callaro_pipeline.cli", "import", str(SAMPLE), "--campaign", "c0", "--json"],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the dbt build (segment models and their tests, then every audience) runs here, alongside the import
        built = run_job("rebuild_segments_and_audiences")
        out, err = importer.communicate(timeout=500)
    finally:
        stop.set()
        reader.join(timeout=30)
        if importer.poll() is None:
            importer.kill()
    assert built, step_failures()
    assert importer.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1])["status"] == "imported", step_failures()
    assert not problems and reads and max(reads) < 10
    con = open_lake(callaro_env)
    assert con.execute("SELECT count(DISTINCT campaign) FROM campaign_contacts").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'segments'").fetchone()[0]
    con.close()


def step_failures() -> str:
    """Why the runs in this home failed: each failed step of each run with its error (for assertion messages;
    the test's data is synthetic, so its errors are shown in full: CALLARO_DEBUG)."""
    from callaro_pipeline.cli.runner import dagster_instance

    instance = dagster_instance()
    failures = [
        f"{run.job_name} {run.run_id[:8]} {event.step_key}: {event.dagster_event.event_specific_data.error}"
        for run in instance.get_runs()
        for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    ]
    return "; ".join(failures)


AFTER_RAW_UPLOAD = ("mapped_contacts", "validated_contacts", "rejected_rows", "suppressed_contacts", "contacts")


def test_the_automation_sensor_runs_by_default_and_continues_only_the_chain() -> None:
    """It is not an import trigger (those stay off): it only continues a chain someone started."""
    from callaro_pipeline.definitions import loaded_definitions

    defs = loaded_definitions()

    sensor = defs.get_sensor_def("upload_chain_automation_sensor")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    targeted = {key.to_user_string() for key in sensor.asset_selection.resolve(graph)}
    assert targeted == {*AFTER_RAW_UPLOAD, "campaign_audiences"}
    assert graph.get(dg.AssetKey("raw_upload")).automation_condition is None


class Ticks:
    """The automation sensor's evaluations against a real instance, its cursor carried from tick to tick."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        from callaro_pipeline.definitions import loaded_definitions

        defs = loaded_definitions()

        self.defs, self.instance, self.cursor = defs, instance, None
        self.tick()  # the sensor's first tick: nothing counts as updated before it

    def tick(self) -> dict[str, set[str | None]]:
        """Each asset requested on this tick, with its partitions."""
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        keys = {r.key for r in result.results if isinstance(r.key, dg.AssetKey)}
        requested = {key.to_user_string(): set(result.get_requested_partitions(key)) for key in keys}
        return {name: partitions for name, partitions in requested.items() if partitions}

    def launch(self, assets: list[str], partition_key: str | None = None, tags: dict[str, str] | None = None) -> bool:
        """A run of these assets (with their checks), as the daemon launches a request or the UI a Materialize."""
        job = self.defs.resolve_implicit_global_asset_job_def()
        return job.execute_in_process(
            instance=self.instance,
            partition_key=partition_key,
            asset_selection=[dg.AssetKey(name) for name in assets],
            tags=tags,
            raise_on_error=False,
        ).success


def _registered_partition(campaign: str, options: UploadOptions | None = None) -> str:
    """The sample file landed, registered and added as an upload partition (what precedes a UI Materialize)."""
    from callaro_pipeline.cli.runner import dagster_instance
    from callaro_pipeline.core.landing import land_upload
    from callaro_pipeline.defs.partitions import UPLOADS

    warehouse = Warehouse()
    landed = land_upload(SAMPLE, campaign=campaign, original_name=SAMPLE.name, uploads_dir=warehouse.paths.uploads)
    with warehouse.transaction() as con:
        register_upload(con, landed, options or UploadOptions())
    dagster_instance().add_dynamic_partitions(UPLOADS, [landed.upload_id])
    return landed.upload_id


def _summary(upload_id: str) -> dict:
    with Warehouse().connect() as con:
        return upload_summary(con, upload_id)


@pytest.mark.slow
def test_materializing_a_raw_upload_partition_makes_its_chain_follow_through_the_gates(callaro_env: Path) -> None:
    from callaro_pipeline.cli.runner import ImportRequest, dagster_instance, run_import

    ticks = Ticks(dagster_instance())
    upload_id = _registered_partition("spring")
    assert ticks.launch(["raw_upload"], upload_id)  # the UI: pick the partition, Materialize

    # the rest of the upload's chain, in one run for its partition (its gates ride in it and block there)
    assert ticks.tick() == {name: {upload_id} for name in AFTER_RAW_UPLOAD}
    assert ticks.launch(list(AFTER_RAW_UPLOAD), upload_id)
    summary = _summary(upload_id)
    assert summary["status"] == "imported" and summary["imported"] > 0
    assert {check["name"] for check in summary["checks"]} == set(REQUIRED_GATES)

    # then the audiences, in their own run once the contacts are merged; then nothing more
    assert ticks.tick() == {"campaign_audiences": {None}}
    assert ticks.launch(["campaign_audiences"])
    assert ticks.tick() == {}

    # `callaro import` runs the whole chain in one import_upload run: automation requests nothing after it
    assert run_import(ImportRequest(file=SAMPLE, campaign="autumn"))["status"] == "imported"
    assert ticks.tick() == {}
    assert ticks.tick() == {}


@pytest.mark.slow
def test_a_gate_that_fails_in_the_automated_run_blocks_the_rest_and_nothing_retries(callaro_env: Path) -> None:
    from callaro_pipeline.cli.runner import ImportRequest, dagster_instance, run_import

    ticks = Ticks(dagster_instance())
    upload_id = _registered_partition("spring", UploadOptions(expected_count=1000))  # Great Expectations fails
    assert ticks.launch(["raw_upload"], upload_id)
    assert ticks.tick() == {name: {upload_id} for name in AFTER_RAW_UPLOAD}
    assert not ticks.launch(list(AFTER_RAW_UPLOAD), upload_id)
    summary = _summary(upload_id)
    assert summary["status"] == "blocked" and summary["imported"] == 0 and summary["blocked"] > 0
    assert ticks.tick() == {}

    # a CLI import blocked by the same gate: its skipped steps are not picked up by automation either
    blocked = run_import(ImportRequest(file=SAMPLE, campaign="autumn", expected_count=1000))
    assert blocked["status"] == "blocked"
    assert ticks.tick() == {}


@pytest.mark.slow
def test_an_import_run_that_ended_part_way_is_not_continued_when_another_upload_was_imported_since(
    callaro_env: Path,
) -> None:
    """Parallel imports (`--submit` runs) update other partitions of the same assets between two ticks: whether an
    update came from a whole-chain run is decided per partition, not from the asset's latest materialization
    (another upload's), or the chain of an import that ended part-way would be run again by automation."""
    from callaro_pipeline.cli.runner import ImportRequest, dagster_instance, run_import
    from callaro_pipeline.defs.run_tags import upload_run_tags

    assert run_import(ImportRequest(file=SAMPLE, campaign="summer"))["status"] == "imported"
    ticks = Ticks(dagster_instance())  # a sensor that has ticked before (on an instance with events)
    upload_id = _registered_partition("spring")
    # an import_upload run of this upload that ended after validation (its tags, as `callaro import` sets them)
    ended = ["raw_upload", "mapped_contacts", "validated_contacts", "rejected_rows"]
    assert ticks.launch(ended, upload_id, tags=upload_run_tags("spring", upload_id, "cli"))
    assert run_import(ImportRequest(file=SAMPLE, campaign="autumn"))["status"] == "imported"
    assert ticks.tick() == {}


@pytest.mark.slow
def test_an_import_that_failed_part_way_is_not_run_again_by_automation(callaro_env: Path, tmp_path: Path) -> None:
    """Its stages after the failure stay undone: `callaro rerun` is the way on, not a second run from automation."""
    from callaro_pipeline.cli.runner import ImportRequest, dagster_instance, run_import

    ticks = Ticks(dagster_instance())
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("columns:\n  not_in_the_file: phone\n", encoding="utf-8")
    failed = run_import(ImportRequest(file=SAMPLE, campaign="spring", mapping=mapping))
    assert failed["status"] == "failed" and failed["failure"]["stage"] == "mapping columns"
    assert ticks.tick() == {}


def test_ui_and_sensor_runs_execute_their_steps_in_the_run_process() -> None:
    """No fresh Python per step (the multiprocess default costs ~10 s a step): every job runs in process."""
    from callaro_pipeline.definitions import loaded_definitions

    defs = loaded_definitions()

    for name in ("import_upload", "rebuild_segments_and_audiences", "refresh_dnc", "lake_maintenance"):
        assert defs.resolve_job_def(name).executor_def.name == dg.in_process_executor.name, name


def test_a_process_keeps_one_dagster_instance_per_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run one after another in a process share their home's instance (built once: its storages'
    schema checks are not paid again); another home gets its own."""
    from callaro_pipeline.cli.runner import dagster_instance

    first_home = install_callaro_env(tmp_path / "first", monkeypatch)
    first = dagster_instance()
    assert dagster_instance() is first
    assert Path(first.root_directory) == first_home / "dagster" and os.environ["DAGSTER_HOME"] == first.root_directory
    second_home = install_callaro_env(tmp_path / "second", monkeypatch)
    second = dagster_instance()
    assert second is not first and Path(second.root_directory) == second_home / "dagster"
    monkeypatch.setenv("CALLARO_HOME", str(first_home))
    assert dagster_instance() is first


def test_a_homes_instance_keeps_one_engine_per_database_file_in_dagsters_own_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The home's storage opens many connections over few engines, and writes where Dagster's default SQLite
    storage does: Dagster's own classes read the same runs, materializations and upload partitions."""
    from callaro_pipeline.cli.runner import dagster_instance

    home = install_callaro_env(tmp_path / "home", monkeypatch)
    instance = dagster_instance()
    assert isinstance(instance.event_log_storage, EventLogStorageReusingEngines)
    assert isinstance(instance.run_storage, RunStorageReusingEngines)
    assert isinstance(instance.schedule_storage, ScheduleStorageReusingEngines)

    @dg.asset
    def probe() -> int:
        return 1

    before = reused_engine.cache_info()
    instance.add_dynamic_partitions(UPLOADS, ["u-probe"])
    result = dg.materialize([probe], instance=instance)
    after = reused_engine.cache_info()
    assert result.success
    # the run's own event database, the cross-run index, runs.db: at most a few engines for dozens of connections
    assert after.misses - before.misses <= 4 and after.hits - before.hits >= 20, (before, after)

    plain = tmp_path / "plain"
    shutil.copytree(home / "dagster", plain)
    (plain / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    default = dg.DagsterInstance.from_config(str(plain))
    try:
        assert not isinstance(default.event_log_storage, EventLogStorageReusingEngines)
        assert default.get_run_by_id(result.run_id).is_success
        assert default.get_latest_materialization_event(dg.AssetKey("probe")).run_id == result.run_id
        assert default.get_dynamic_partitions(UPLOADS) == ["u-probe"]
    finally:
        default.dispose()

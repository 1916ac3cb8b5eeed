"""Field defects of issue 16 (newcomer trial and adversarial run): read-only home, full disk, the blocked-upload
count invariant, merge conflicts listed, `contacts remove --campaign`, a blocked upload in words in Dagster.

Every hostile condition is made by the tests: a read-only bind mount of the home (or chmod for a non-root user),
a lock path that cannot be created, ENOSPC raised from the one function that writes the landing copy or a
stage's rows.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from callaro_pipeline_tests.conftest import Ran, cli, open_lake, write_csv

HEADER = ["first_name", "last_name", "phone", "email", "state"]


def people(n: int, start: int = 0) -> list[list[str]]:
    return [[f"Ann{i}", f"Lee{i}", f"(415) 555-{1000 + i:04d}", f"a{i}@example.com", "CA"] for i in range(start, n)]


def one_clean_line(ran: Ran) -> None:
    assert "Traceback" not in ran.err and "Traceback" not in ran.out, ran.err
    assert len(ran.err.strip().splitlines()) == 1, ran.err
    assert ran.err.startswith("callaro: "), ran.err


def home_state(home: Path) -> dict[str, tuple[int, int]]:
    """Every path under the home with its size and mtime (folders too: a created file changes its folder)."""
    return {str(p.relative_to(home)): (p.stat().st_size, p.stat().st_mtime_ns) for p in [home, *home.rglob("*")]}


def query(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = open_lake(home)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


# --- 1. read-only home -----------------------------------------------------------------------------------------


@pytest.fixture
def populated_home(callaro_env: Path, tmp_path: Path) -> tuple[Path, str]:
    """A home with one imported upload and a built audience in campaign `ro`."""
    ran = cli("import", write_csv(tmp_path / "people.csv", HEADER, people(5)), "--campaign", "ro", "--json")
    assert ran.code == 0, ran.err
    return callaro_env, ran.json()["upload_id"]


def read_commands(upload_id: str, out: Path) -> list[tuple[str, ...]]:
    return [
        ("report", upload_id, "--json"),
        ("uploads", "--json"),
        ("audience", "ro"),
        ("audience", "ro", "--out", str(out / "audience.csv")),
        ("contacts", "export", "--out", str(out / "contacts.csv")),
    ]


def test_read_commands_change_nothing_in_the_home_and_need_no_lock_file(
    populated_home: tuple[Path, str], tmp_path: Path
) -> None:
    home, upload_id = populated_home
    (home / "warehouse.lock").unlink(missing_ok=True)
    (home / "warehouse.lock").mkdir()  # the lock file cannot be created: readers must not need it
    out = tmp_path / "out"
    out.mkdir()
    before = home_state(home)
    for command in read_commands(upload_id, out):
        ran = cli(*command)
        assert ran.code == 0, (command, ran.err)
        assert ran.err == "", (command, ran.err)
    assert home_state(home) == before
    assert pl.read_csv(out / "audience.csv").height == 5
    assert pl.read_csv(out / "contacts.csv").height == 5


def test_a_read_command_on_a_warehouse_with_an_older_schema_brings_it_up_to_date(
    populated_home: tuple[Path, str],
) -> None:
    from callaro_pipeline.storage import warehouse

    home, _ = populated_home
    con = open_lake(home, read_only=False)
    # as a lake written before the last migration existed: its ledger lacks it, and its view is missing
    con.execute("DROP VIEW campaign_audiences")
    con.execute("DELETE FROM schema_migrations WHERE name = '40_audiences.sql'")
    con.close()
    warehouse._CURRENT_SCHEMA.clear()  # this test process saw the lake current before the change behind its back
    ran = cli("audience", "ro")
    assert ran.code == 0, ran.err
    assert "5 callable contacts" in ran.out


@contextlib.contextmanager
def read_only(home: Path) -> Iterator[None]:
    """The home made read-only for real: a read-only bind mount over itself (root), else chmod -R a-w."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [home, *home.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    mount = shutil.which("mount")
    umount = shutil.which("umount")
    if not mount or not umount:
        pytest.skip("no mount command to make a read-only home as root")
    bound = subprocess.run([mount, "--bind", str(home), str(home)], capture_output=True, check=False)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount as root here: {bound.stderr.decode().strip()}")
    try:
        remounted = subprocess.run([mount, "-o", "remount,bind,ro", str(home)], capture_output=True, check=False)
        if remounted.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remounted.stderr.decode().strip()}")
        with pytest.raises(OSError):  # it really is read-only
            (home / "probe").write_text("x")
        yield
    finally:
        subprocess.run([umount, str(home)], check=False)


def test_read_commands_work_on_a_read_only_home(populated_home: tuple[Path, str], tmp_path: Path) -> None:
    home, upload_id = populated_home
    out = tmp_path / "out"
    out.mkdir()
    with read_only(home):
        for command in read_commands(upload_id, out):
            ran = cli(*command)
            assert ran.code == 0, (command, ran.err)
            assert "Traceback" not in ran.err
    assert ran.code == 0
    assert pl.read_csv(out / "contacts.csv").height == 5


def test_writing_commands_on_a_read_only_home_say_so_in_one_line(
    populated_home: tuple[Path, str], tmp_path: Path
) -> None:
    home, _ = populated_home
    upload = write_csv(tmp_path / "more.csv", HEADER, people(8, 5))
    with read_only(home):
        for command in (
            ("import", upload, "--campaign", "ro"),
            ("dnc", "add", "+14155551001"),
        ):
            ran = cli(*command)
            assert ran.code == 2, (command, ran.out, ran.err)
            one_clean_line(ran)
            assert "read-only" in ran.err.lower() or "permission" in ran.err.lower(), ran.err
    assert query(home, "SELECT count(*) FROM uploads")[0][0] == 1
    assert query(home, "SELECT count(*) FROM dnc_numbers")[0][0] == 0


# --- 2. full disk during an import ----------------------------------------------------------------------------


def _disk_full(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "validated_contacts")


def test_full_disk_while_landing_is_one_line_and_registers_nothing(
    callaro_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callaro_pipeline.core import landing

    source = write_csv(tmp_path / "people.csv", HEADER, people(4))
    original = source.read_bytes()
    monkeypatch.setattr(landing, "_copy_hashing", _disk_full)
    ran = cli("import", source, "--campaign", "full")
    assert ran.code == 2
    one_clean_line(ran)
    assert "No space left on device" in ran.err
    assert source.read_bytes() == original
    assert not list((callaro_env / "uploads").glob(".incoming-*"))
    if (callaro_env / "lake" / "catalog.sqlite").exists():
        assert query(callaro_env, "SELECT count(*) FROM uploads WHERE status = 'imported'")[0][0] == 0


def _duckdb_disk_full(*_args: object, **_kwargs: object) -> None:
    raise duckdb.IOException('IO Error: Could not write file "warehouse.duckdb.wal": No space left on device')


@pytest.mark.parametrize("full", [_disk_full, _duckdb_disk_full], ids=["os-write", "duckdb-write"])
def test_full_disk_while_writing_a_stage_fails_the_upload_with_the_reason(
    callaro_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, full: object
) -> None:
    from callaro_pipeline.storage import stage_tables as validation

    real = validation.replace_partition

    def replace_partition(con, table, upload_id, df, **kwargs):  # noqa: ANN001, ANN202
        if table == "validated_contacts":
            full()  # type: ignore[operator]
        return real(con, table, upload_id, df, **kwargs)

    source = write_csv(tmp_path / "people.csv", HEADER, people(4))
    monkeypatch.setattr(validation, "replace_partition", replace_partition)
    ran = cli("import", source, "--campaign", "full", "--json")
    assert ran.code == 2, ran.err
    one_clean_line(ran)
    summary = ran.json()
    assert summary["status"] == "failed"
    assert "No space left on device" in summary["failure"]["message"]
    assert "No space left on device" in ran.err
    (status, stored), *_ = query(
        callaro_env, "SELECT status, stored_path FROM uploads WHERE upload_id = ?", [summary["upload_id"]]
    )
    assert status == "failed"
    assert Path(stored).read_bytes() == source.read_bytes()  # the original upload is kept
    assert query(callaro_env, "SELECT count(*) FROM contacts")[0][0] == 0


# --- 3. blocked upload: every row accounted for ---------------------------------------------------------------

PARTS = ("imported", "rejected", "duplicates", "suppressed", "blocked")


def test_a_blocked_upload_counts_its_held_back_rows(callaro_env: Path, tmp_path: Path) -> None:
    rows = people(14) + [["Bad", "Row", "not a phone", "", "CA"]] * 4 + people(2)  # 4 rejected, 2 duplicates
    source = write_csv(tmp_path / "people.csv", HEADER, rows)
    ran = cli("import", source, "--campaign", "held", "--expected-count", "99", "--json")
    assert ran.code == 1, ran.err
    summary = ran.json()
    assert summary["status"] == "blocked"
    assert summary["rows_read"] == 20 and summary["rejected"] == 4 and summary["imported"] == 0
    assert summary["blocked"] == 20 - 4 - summary["duplicates"] - summary["suppressed"] > 0
    assert summary["rows_read"] == sum(summary[key] for key in PARTS)
    report = cli("report", summary["upload_id"], "--json").json()
    assert report["blocked"] == summary["blocked"]
    clean = write_csv(tmp_path / "clean.csv", HEADER, people(14) + people(2))
    ok = cli("import", clean, "--campaign", "held2", "--json").json()
    assert ok["status"] == "imported" and ok["blocked"] == 0
    assert ok["rows_read"] == sum(ok[key] for key in PARTS)


# --- 4. merge conflicts listed --------------------------------------------------------------------------------


def test_merge_conflicts_are_listed_with_both_values_in_a_report_file(callaro_env: Path, tmp_path: Path) -> None:
    rows = [
        ["Ann", "Lee", "(415) 555-0101", "ann@example.com", "CA"],
        ["Bob", "Lee", "(415) 555-0101", "bob@example.com", "CA"],  # another person sharing the phone
        ["Cy", "Ng", "(415) 555-0102", "cy@example.com", "CA"],
    ]
    source = write_csv(tmp_path / "merge.csv", HEADER, rows)
    ran = cli("import", source, "--campaign", "merging", "--duplicates", "merge", "--json")
    assert ran.code == 0, ran.err
    summary = ran.json()
    assert summary["merge_conflicts"] == 2
    report = pl.read_csv(summary["merge_conflicts_report"], infer_schema_length=0)
    assert report.columns == ["row_number", "field", "kept_row", "kept_value", "other_row", "other_value"]
    lines = {tuple(r) for r in report.select("row_number", "field", "kept_value", "other_value").iter_rows()}
    assert lines == {("2", "first_name", "Ann", "Bob"), ("2", "email", "ann@example.com", "bob@example.com")}
    # values only in the report file: the summary (metadata, logs) carries the count and the path
    stored = query(callaro_env, "SELECT summary FROM uploads WHERE upload_id = ?", [summary["upload_id"]])[0][0]
    assert "Bob" not in stored and "bob@example.com" not in stored
    text = cli("report", summary["upload_id"])
    assert "conflicts  2 in " in text.out


# --- 5. contacts remove --campaign ----------------------------------------------------------------------------


def test_contacts_remove_from_one_campaign_only(callaro_env: Path, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "people.csv", HEADER, people(4))
    for campaign in ("alpha", "beta"):
        assert cli("import", source, "--campaign", campaign).code == 0
    where = "first_name = Ann1"
    dry = cli("contacts", "remove", "--campaign", "alpha", "--where", where)
    assert dry.code == 0 and "1 contacts would change" in dry.out, dry.out
    assert query(callaro_env, "SELECT count(*) FROM campaign_contacts WHERE campaign = 'alpha'")[0][0] == 4
    ran = cli("contacts", "remove", "--campaign", "alpha", "--where", where, "--yes")
    assert ran.code == 0, ran.err
    assert "campaigns: alpha" in ran.out
    members = dict(query(callaro_env, "SELECT campaign, count(*) FROM campaign_contacts GROUP BY 1"))
    assert members == {"alpha": 3, "beta": 4}
    assert query(callaro_env, "SELECT count(*) FROM contacts")[0][0] == 4  # still in the book
    audiences = dict(query(callaro_env, "SELECT campaign, count(*) FROM campaign_audiences GROUP BY 1"))
    assert audiences == {"alpha": 3, "beta": 4}
    (action, campaign), *_ = query(
        callaro_env, "SELECT action, campaign FROM contact_changes WHERE action = 'campaign_remove'"
    )
    assert (action, campaign) == ("campaign_remove", "alpha")


# --- 6. a blocked upload in Dagster, in words -----------------------------------------------------------------


def test_a_blocked_upload_says_blocked_by_gate_in_dagster(callaro_env: Path, tmp_path: Path) -> None:
    from callaro_pipeline.cli.runner import dagster_instance
    from callaro_pipeline.defs.contact_book.assets import contacts
    from callaro_pipeline.storage.warehouse import Warehouse

    source = write_csv(tmp_path / "people.csv", HEADER, people(5))
    summary = cli("import", source, "--campaign", "gated", "--expected-count", "50", "--json").json()
    assert summary["status"] == "blocked"
    upload_id = summary["upload_id"]
    instance = dagster_instance()
    (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"callaro/upload_id": upload_id}))
    evaluations = [
        event.dagster_event.event_specific_data
        for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    ]
    failed = [e for e in evaluations if not e.passed]
    assert failed and failed[0].description.startswith(f"blocked by {failed[0].check_name}: "), failed

    # materializing the contacts asset alone (as a UI user might) refuses the upload in words
    result = dg.materialize(
        [contacts],
        partition_key=upload_id,
        instance=instance,
        resources={"warehouse": Warehouse()},
        raise_on_error=False,
        selection=[contacts.key],
    )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    data = failure.step_failure_data
    assert data.user_failure_data is not None
    description = data.user_failure_data.description
    assert description.startswith("blocked by great_expectations_upload: "), description
    assert "withheld" not in description and "Traceback" not in description
    assert query(callaro_env, "SELECT count(*) FROM contacts")[0][0] == 0

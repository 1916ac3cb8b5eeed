"""The storage layer: partition writes are one transaction, by column name; files outside CALLARO_HOME are off
limits; readers never wait for a writer; writers queue on the writer lock with a bounded wait.

Why not the stock dagster-duckdb IO managers is written in warehouse.py; these tests hold our own layer to the
rules they break (atomic replace, insert by name, no silent wipe by an empty frame).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.storage import warehouse as warehouse_module
from callaro_pipeline.storage.lake import LakeUnavailable
from callaro_pipeline.storage.warehouse import Warehouse, WarehouseBusy, replace_partition
from callaro_pipeline_tests.conftest import query

PROBLEMS = pl.DataFrame(
    {
        "row_number": [2, 3, 4],
        "column": ["Phone", "Phone", "E-mail"],
        "field": ["phone", "phone", "email"],
        "code": ["invalid_phone", "missing_required", "invalid_email"],
        "message": ["not a number", "empty", "no @"],
        "value": ["abc", None, "x"],
    }
)


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    home = tmp_path / "home"
    home.mkdir()
    store = Warehouse(home=str(home), lock_timeout_seconds=5)
    with store.transaction() as con:
        replace_partition(con, "rejected_rows", "u1", PROBLEMS)
        replace_partition(con, "rejected_rows", "u2", PROBLEMS.head(1))
    return store


def rows(store: Warehouse, upload_id: str = "u1") -> list[tuple]:
    with store.read() as con:
        return con.execute(
            'SELECT row_number, "column", field, code, message, value FROM rejected_rows WHERE upload_id = ? '
            "ORDER BY row_number",
            [upload_id],
        ).fetchall()


def test_failure_between_delete_and_insert_keeps_the_previous_rows(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = rows(warehouse)

    def crash(*_args: object, **_kwargs: object) -> str:  # runs after the DELETE, before the INSERT
        raise RuntimeError("injected crash between DELETE and INSERT")

    monkeypatch.setattr(warehouse_module, "stage", crash)
    with pytest.raises(RuntimeError, match="injected"), warehouse.transaction() as con:
        replace_partition(con, "rejected_rows", "u1", PROBLEMS.head(1))
    assert rows(warehouse) == before
    assert len(rows(warehouse, "u2")) == 1


def test_insert_failing_on_a_constraint_keeps_the_previous_rows(warehouse: Warehouse) -> None:
    before = rows(warehouse)
    broken = PROBLEMS.with_columns(pl.lit(None, pl.Utf8).alias("code"))  # code is NOT NULL
    with pytest.raises(duckdb.ConstraintException), warehouse.transaction() as con:
        replace_partition(con, "rejected_rows", "u1", broken)
    assert rows(warehouse) == before


def test_rows_are_inserted_by_column_name_not_position(warehouse: Warehouse) -> None:
    shuffled = PROBLEMS.select(list(reversed(PROBLEMS.columns)))
    with warehouse.transaction() as con:
        assert replace_partition(con, "rejected_rows", "u1", shuffled) == 3
    assert rows(warehouse) == [tuple(r) for r in PROBLEMS.rows()]


def test_a_replace_replaces_only_its_own_partition(warehouse: Warehouse) -> None:
    with warehouse.transaction() as con:
        replace_partition(con, "rejected_rows", "u1", PROBLEMS.tail(1))
    assert [r[0] for r in rows(warehouse)] == [4]
    assert len(rows(warehouse, "u2")) == 1


def test_an_empty_frame_wipes_a_partition_only_when_allowed(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="zero rows"), warehouse.transaction() as con:
        replace_partition(con, "rejected_rows", "u1", PROBLEMS.clear(), allow_empty=False)
    assert len(rows(warehouse)) == 3
    with warehouse.transaction() as con:
        replace_partition(con, "rejected_rows", "u1", PROBLEMS.clear())  # the intent: this upload has none now
    assert rows(warehouse) == []


def test_raw_rows_are_replaced_atomically_too(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """raw_rows has its own fast writer (cells built by DuckDB): the same all-or-nothing rule holds for it."""
    cells = pl.DataFrame({"row_number": [2, 3], "Phone": ["1", "2"], "Name": ["a", "b"]})
    with warehouse.transaction() as con:
        warehouse_module.replace_raw_rows(con, "u1", cells, ["Phone", "Name"])

    def crash(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError("injected crash between DELETE and INSERT")

    monkeypatch.setattr(warehouse_module, "stage", crash)
    with pytest.raises(RuntimeError, match="injected"), warehouse.transaction() as con:
        warehouse_module.replace_raw_rows(con, "u1", cells.head(1), ["Phone", "Name"])
    assert query(warehouse, "SELECT row_number, cells FROM raw_rows ORDER BY 1").rows() == [
        (2, ["1", "a"]),
        (3, ["2", "b"]),
    ]


def test_pipeline_connections_cannot_reach_files_outside_home(warehouse: Warehouse) -> None:
    home = warehouse.paths.home
    (home / "inside.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    outside = home.parent / "outside.csv"
    outside.write_text("a,b\n3,4\n", encoding="utf-8")
    sibling = home.parent / (home.name + "x")  # a prefix of home is not home
    sibling.mkdir()
    (sibling / "s.csv").write_text("a,b\n5,6\n", encoding="utf-8")
    with warehouse.connect() as con:
        assert con.execute(f"SELECT * FROM read_csv('{home}/inside.csv')").fetchall() == [(1, 2)]
        for sql in (
            "SELECT * FROM read_csv('/etc/passwd')",
            f"SELECT * FROM read_csv('{outside}')",
            f"SELECT * FROM read_csv('{home}/../outside.csv')",
            f"SELECT * FROM read_csv('{sibling}/s.csv')",
            "SELECT * FROM read_text('/etc/hostname')",
            f"COPY (SELECT 1) TO '{home.parent}/exfiltrated.csv'",
            f"ATTACH '{home.parent}/other.duckdb' AS other",
        ):
            with pytest.raises(duckdb.PermissionException):
                con.execute(sql)
        for sql in ("SET enable_external_access = true", "SET allowed_directories = ['/']"):
            with pytest.raises(duckdb.InvalidInputException, match="locked"):
                con.execute(sql)
    assert not (home.parent / "exfiltrated.csv").exists()


READ_IN_A_LOOP = """
import sys, time
from callaro_pipeline.storage.warehouse import Warehouse
store = Warehouse(home=sys.argv[1])
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    started = time.monotonic()
    with store.read() as con:
        count = con.execute("SELECT count(*) FROM rejected_rows").fetchone()[0]
    print(count, round(time.monotonic() - started, 3), flush=True)
    time.sleep(0.05)
"""


def test_a_reader_in_another_process_never_waits_for_a_writer(warehouse: Warehouse) -> None:
    """While this process holds the writer lock with an uncommitted replace, another process reads the last
    committed snapshot at once, and sees the new rows once they are committed."""
    reader = subprocess.Popen(
        [sys.executable, "-c", READ_IN_A_LOOP, warehouse.home, "10"], stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().split()[0] == "4"
    with warehouse.transaction() as con:
        replace_partition(con, "rejected_rows", "u3", PROBLEMS)
        time.sleep(5)  # the reader keeps answering meanwhile, with the committed count
    output, _ = reader.communicate(timeout=60)
    answers = [line.split() for line in output.splitlines()]
    assert {count for count, _ in answers} <= {"4", "7"} and answers[-1][0] == "7"
    # never held for the writer's 5 s (the first answer also paid for loading the extensions in a fresh process)
    assert max(float(seconds) for _, seconds in answers[1:]) < 2.5


HOLD_LOCK = """
import sys, time
from callaro_pipeline.storage.warehouse import Warehouse
with Warehouse(home=sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold_lock(home: str, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, home, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_writer_waits_for_another_writer_then_writes(warehouse: Warehouse) -> None:
    other = _hold_lock(warehouse.home, 1.5)
    try:
        with warehouse.transaction() as con:
            replace_partition(con, "rejected_rows", "u3", PROBLEMS)
    finally:
        other.wait(timeout=30)
    assert len(rows(warehouse, "u3")) == 3


def test_a_writer_gives_up_with_warehouse_busy_after_its_timeout(warehouse: Warehouse) -> None:
    other = _hold_lock(warehouse.home, 30)
    try:
        impatient = Warehouse(home=warehouse.home, lock_timeout_seconds=1)
        started = time.monotonic()
        with pytest.raises(WarehouseBusy), impatient.connect():
            pass
        assert time.monotonic() - started < 10
    finally:
        other.kill()
        other.wait()


def test_a_catalog_that_cannot_be_opened_is_one_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    not_a_catalog = tmp_path / "catalog.sqlite"
    not_a_catalog.write_text("this is not a SQLite file", encoding="utf-8")
    store = Warehouse(home=str(home), catalog=f"sqlite:{not_a_catalog}", data_path=str(tmp_path / "data"))
    with pytest.raises(LakeUnavailable, match="cannot open the warehouse catalog") as raised, store.connect():
        pass
    assert "\n" not in str(raised.value)
    assert not_a_catalog.read_text(encoding="utf-8") == "this is not a SQLite file"


@pytest.mark.parametrize("threads", [1, 3])
def test_callaro_threads_sets_the_threads_of_pipeline_and_dbt_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    from callaro_pipeline.storage.dbt_plugin import Plugin

    monkeypatch.setenv("CALLARO_THREADS", str(threads))
    with Warehouse(home=str(tmp_path / "home")).connect() as con:
        assert con.execute("SELECT current_setting('threads')").fetchone() == (threads,)
    with duckdb.connect() as dbt_connection:
        Plugin("callaro", {}).configure_connection(dbt_connection)
        assert dbt_connection.execute("SELECT current_setting('threads')").fetchone() == (threads,)


def test_a_callaro_threads_that_is_not_a_count_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLARO_THREADS", "two")
    with pytest.raises(ConfigError, match="^CALLARO_THREADS must be a positive whole number, not 'two'$"):
        with Warehouse(home=str(tmp_path / "home")).connect():
            pass
    assert not (tmp_path / "home" / "lake").exists()


def test_dbt_attaches_the_same_lake_offline() -> None:
    """dbt's profile attaches the lake named by the pipeline, with the extension loaded by our plugin."""
    import yaml

    from callaro_pipeline.core.project_paths import PROJECT_ROOT

    profile = yaml.safe_load((PROJECT_ROOT / "dbt_contacts" / "profiles.yml").read_text(encoding="utf-8"))
    target = profile["callaro_contacts"]["outputs"]["lake"]
    assert target["database"] == "lake"
    assert [plugin["module"] for plugin in target["plugins"]] == ["callaro_pipeline.storage.dbt_plugin"]
    (attachment,) = target["attach"]
    assert attachment["alias"] == "lake" and attachment["path"].startswith("ducklake:")


def test_a_new_lake_has_statistics_for_every_table_and_no_data_file(tmp_path: Path) -> None:
    """Empty tables get their zero statistics when they are created (a query on a table without them costs one
    catalog query per column, every time: storage/migrations.give_statistics); the row that gives them is never
    written nor seen."""
    store = Warehouse(home=str(tmp_path / "home"))
    with store.connect() as con:
        tables = {
            name
            for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'lake'").fetchall()
        }
        metadata = "__ducklake_metadata_lake"
        with_statistics = con.execute(
            f"SELECT t.table_name, s.record_count FROM {metadata}.ducklake_table_stats s "  # noqa: S608
            f"JOIN {metadata}.ducklake_table t USING (table_id) WHERE t.end_snapshot IS NULL"
        ).fetchall()
        data_files = con.execute(f"SELECT count(*) FROM {metadata}.ducklake_data_file").fetchone()[0]  # noqa: S608
        counts = {table: con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}  # noqa: S608
    assert {name for name, _ in with_statistics} == tables
    assert {name: records for name, records in with_statistics if name != "schema_migrations"} == dict.fromkeys(
        tables - {"schema_migrations"}, 0
    )
    assert data_files == 0
    assert counts == {**dict.fromkeys(tables, 0), "schema_migrations": counts["schema_migrations"]}
    assert counts["schema_migrations"] > 0

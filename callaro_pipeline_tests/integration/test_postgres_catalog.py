"""The shared DuckLake catalog on a real (throwaway) Postgres: schema, round trip, reads of a catalog nobody
initialised, an unreachable server, two writers at once — under one home (one file lock) and under two homes
sharing the catalog and data path (two machines) — the filter results of duckdb/ducklake#1094, and a whole
`callaro import` from the command line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import polars as pl
import pytest

from callaro_pipeline.storage import migrations
from callaro_pipeline.storage.lake import LakeUnavailable, attach, instance_config
from callaro_pipeline.storage.warehouse import Warehouse, WarehouseBusy, replace_partition
from callaro_pipeline_tests.conftest import install_callaro_env, query, write_csv
from callaro_pipeline_tests.postgres import create_database, free_port

pytestmark = pytest.mark.slow

ROUNDS = 6  # transactions per writer
INLINED = 10  # DuckLake keeps an insert of at most this many rows in the catalog itself (no data file)


def rejected(rows: int) -> pl.DataFrame:
    """`rows` rejected rows (no personal data: codes and row numbers only)."""
    return pl.DataFrame(
        {
            "row_number": pl.Series(range(1, rows + 1), dtype=pl.Int64),
            "column": "Phone Number",
            "field": "phone",
            "code": "invalid_phone",
            "message": "not a phone number",
            "value": None,
        },
        schema_overrides={"value": pl.String},
    )


# One writer "machine": ROUNDS transactions, each replacing upload `<name>-<i>` (20 + i rows) and re-replacing
# the writer's `<name>-again` (11 + i rows: a delete of committed rows each time); every insert is larger than
# DuckLake inlines, so each one writes a data file with min/max statistics. Starts when `go` exists.
WRITER = """
import sys, time
from pathlib import Path
from callaro_pipeline.storage.warehouse import Warehouse, WarehouseBusy, replace_partition
from callaro_pipeline_tests.integration.test_postgres_catalog import ROUNDS, rejected
home, catalog, data_path, name, go = sys.argv[1:]
store = Warehouse(home=home, catalog=catalog, data_path=data_path)
with store.connect():
    pass  # migrated, instance open: the rounds below race the other writer's
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.01)
for i in range(ROUNDS):
    with store.transaction() as con:
        replace_partition(con, "rejected_rows", f"{name}-{i}", rejected(20 + i))
        replace_partition(con, "rejected_rows", f"{name}-again", rejected(11 + i))
print("done", flush=True)
"""


def expected_counts(names: list[str]) -> dict[str, int]:
    """Rows per upload after the writers above ran one after the other (in any order)."""
    counts = {f"{name}-{i}": 20 + i for name in names for i in range(ROUNDS)}
    return counts | {f"{name}-again": 11 + ROUNDS - 1 for name in names}


def new_catalog(conninfo: str) -> str:
    """`postgres:<conninfo>` of a new empty database: each test has its own lake."""
    return "postgres:" + create_database(conninfo, f"lake_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def catalog(postgres_conninfo: str) -> str:
    return new_catalog(postgres_conninfo)


def run_writers(tmp_path: Path, catalog: str, homes: list[Path]) -> None:
    data_path, go = tmp_path / "data", tmp_path / "go"
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(home), catalog, str(data_path), f"w{n}", str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, home in enumerate(homes)
    ]
    try:
        for writer in writers:
            assert writer.stdout.readline().strip() == "ready", writer.communicate(timeout=60)[1][-2000:]
    finally:
        go.touch()
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0 and out.strip() == "done", err[-2000:]


def test_schema_migrates_and_a_write_reads_back(tmp_path: Path, catalog: str) -> None:
    store = Warehouse(home=str(tmp_path / "home"), catalog=catalog, data_path=str(tmp_path / "data"))
    assert store.location.kind == "postgres"
    # nobody initialised the catalog: a read is an empty lake and creates nothing
    assert query(store, "SELECT count(*) AS n FROM rejected_rows")["n"].item() == 0
    assert not (tmp_path / "data").exists()

    with store.transaction() as con:
        assert migrations.pending(con) == []
        replace_partition(con, "rejected_rows", "u1", rejected(3))
    frame = query(store, "SELECT upload_id, row_number, code FROM rejected_rows ORDER BY row_number")
    assert frame.to_dicts() == [{"upload_id": "u1", "row_number": n, "code": "invalid_phone"} for n in (1, 2, 3)]
    with store.transaction() as con:
        replace_partition(con, "rejected_rows", "u2", rejected(INLINED + 1))
    assert list((tmp_path / "data").rglob("*.parquet")), "a larger write's data file is under the data path"

    # another home (another machine) with the same catalog and data path sees the same lake
    other = Warehouse(home=str(tmp_path / "other"), catalog=catalog, data_path=str(tmp_path / "data"))
    assert query(other, "SELECT count(*) AS n FROM rejected_rows")["n"].item() == 3 + INLINED + 1


def test_catalog_sessions_speak_english_to_the_server(tmp_path: Path, catalog: str) -> None:
    """duckdb/ducklake#1311: the throwaway server's own lc_messages is C.UTF-8; the catalog's sessions ask for C
    (PGOPTIONS, read by libpq at connect: the setting's source is the client)."""
    store = Warehouse(home=str(tmp_path / "home"), catalog=catalog, data_path=str(tmp_path / "data"))
    with store.connect():
        pass
    con = duckdb.connect(config=instance_config())
    try:
        attach(con, store.location, read_only=True)
        setting = con.execute(
            "SELECT * FROM postgres_query('__ducklake_metadata_lake', "
            "'SELECT setting, source FROM pg_settings WHERE name = ''lc_messages''')"
        ).fetchone()
        in_server_file = con.execute(
            "SELECT * FROM postgres_query('__ducklake_metadata_lake', "
            "'SELECT setting FROM pg_file_settings WHERE name = ''lc_messages''')"
        ).fetchone()
    finally:
        con.close()
    assert setting == ("C", "client") and in_server_file == ("C.UTF-8",)


def test_the_catalog_is_configured_by_environment(
    tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLARO_CATALOG", catalog)
    monkeypatch.setenv("CALLARO_DATA_PATH", str(tmp_path / "data"))
    with Warehouse(home=str(tmp_path / "home")).transaction() as con:
        replace_partition(con, "rejected_rows", "u1", rejected(2))
    assert not (tmp_path / "home" / "lake").exists(), "no local catalog was made"
    assert query(Warehouse(home=str(tmp_path / "home")), "SELECT count(*) AS n FROM rejected_rows")["n"].item() == 2


@pytest.mark.parametrize("operation", ["read", "connect"])
def test_an_unreachable_catalog_is_one_line(tmp_path: Path, operation: str) -> None:
    conninfo = f"dbname=callaro host=127.0.0.1 port={free_port()} user=postgres password=secret-word"
    store = Warehouse(home=str(tmp_path / "home"), catalog=f"postgres:{conninfo}", data_path=str(tmp_path / "d"))
    with pytest.raises(LakeUnavailable) as raised:
        with getattr(store, operation)():
            pass
    message = str(raised.value)
    assert message.startswith("cannot open the warehouse catalog postgres:dbname=callaro"), message
    assert "\n" not in message and "secret-word" not in message and "password=***" in message


def test_writers_of_one_home_share_the_catalog(tmp_path: Path, catalog: str) -> None:
    """Same home: the file lock makes the two processes take turns."""
    run_writers(tmp_path, catalog, [tmp_path / "home", tmp_path / "home"])
    store = Warehouse(home=str(tmp_path / "home"), catalog=catalog, data_path=str(tmp_path / "data"))
    frame = query(store, "SELECT upload_id, count(*) AS n FROM rejected_rows GROUP BY 1")
    assert dict(frame.iter_rows()) == expected_counts(["w0", "w1"])


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory: pytest.TempPathFactory, postgres_conninfo: str) -> tuple[Warehouse, pl.DataFrame]:
    """Two writers with their own homes (own file locks) on one catalog and data path, started at the same
    instant; returns a reader and all the rows, unfiltered."""
    tmp_path, catalog = tmp_path_factory.mktemp("two-machines"), new_catalog(postgres_conninfo)
    run_writers(tmp_path, catalog, [tmp_path / "machine0", tmp_path / "machine1"])
    store = Warehouse(home=str(tmp_path / "reader"), catalog=catalog, data_path=str(tmp_path / "data"))
    return store, query(store, "SELECT upload_id, row_number FROM rejected_rows")


def test_writers_of_two_machines_both_commit(two_machines: tuple[Warehouse, pl.DataFrame]) -> None:
    _, rows = two_machines
    counts = rows.group_by("upload_id").len()
    assert dict(counts.iter_rows()) == expected_counts(["w0", "w1"])


def test_filters_after_concurrent_writes_see_every_live_row(two_machines: tuple[Warehouse, pl.DataFrame]) -> None:
    """duckdb/ducklake#1094: lost min/max statistics would make a filter skip files holding live rows."""
    store, rows = two_machines
    with store.read() as con:
        for k in (1, 12, 18, 21, 25):
            filtered = con.execute("SELECT count(*) FROM rejected_rows WHERE row_number >= ?", [k]).fetchone()[0]
            assert filtered == rows.filter(pl.col("row_number") >= k).height, k
        for upload_id in rows["upload_id"].unique().to_list():
            filtered = con.execute("SELECT count(*) FROM rejected_rows WHERE upload_id = ?", [upload_id]).fetchone()
            assert filtered[0] == rows.filter(pl.col("upload_id") == upload_id).height, upload_id


def test_a_whole_import_through_the_command_line(tmp_path: Path, catalog: str, monkeypatch: pytest.MonkeyPatch) -> None:
    install_callaro_env(tmp_path, monkeypatch)
    defaults = Path(os.environ["CALLARO_CONFIG"]) / "campaigns" / "_defaults.yaml"
    defaults.write_text("require_national_dnc: false\nrequire_consent: false\n", encoding="utf-8")
    env = os.environ | {"CALLARO_CATALOG": catalog, "CALLARO_DATA_PATH": str(tmp_path / "shared")}
    file = write_csv(
        tmp_path / "leads.csv",
        ["First Name", "Phone Number"],
        [[f"Lead{i}", f"(415) 555-{i:04d}"] for i in range(20)],
    )

    def callaro(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "callaro_pipeline.cli", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    callaro("import", str(file), "--campaign", "spring")
    assert re.search(r"\b20\b", callaro("sql", "SELECT count(*) AS n FROM contacts"))
    assert not (tmp_path / "home" / "lake" / "catalog.sqlite").exists()
    store = Warehouse(catalog=catalog, data_path=str(tmp_path / "shared"))
    assert query(store, "SELECT count(*) AS n FROM contacts")["n"].item() == 20


def test_a_machine_waits_for_another_machines_write_then_gives_up(tmp_path: Path, catalog: str) -> None:
    """The shared catalog's writer lock (a Postgres advisory lock): another home's write session waits for it."""
    first = Warehouse(home=str(tmp_path / "machine0"), catalog=catalog, data_path=str(tmp_path / "data"))
    second = Warehouse(
        home=str(tmp_path / "machine1"), catalog=catalog, data_path=str(tmp_path / "data"), lock_timeout_seconds=0.3
    )
    with first.connect():
        with pytest.raises(WarehouseBusy, match="shared catalog stayed locked by another machine"):
            with second.connect():
                pass
    with second.transaction() as con:  # free again
        replace_partition(con, "rejected_rows", "u1", rejected(1))

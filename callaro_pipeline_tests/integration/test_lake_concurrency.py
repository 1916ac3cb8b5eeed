"""Two imports of different uploads into one campaign at the same instant, with an analyst reading in a loop:
the contact book and the campaign equal running them one after the other, and every read answers (no error,
no wait for an import)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callaro_pipeline_tests.conftest import install_callaro_env, open_lake, write_csv

HEADER = ["First Name", "Phone Number", "Lead Source"]
READER = """
import sys, time
from pathlib import Path
from callaro_pipeline.storage.warehouse import Warehouse
store, errors, answers, stop = Warehouse(), 0, 0, Path(sys.argv[1])
while not stop.exists():
    try:
        with store.read() as con:
            con.execute("SELECT count(*) FROM contacts").fetchone()
        answers += 1
    except Exception as error:  # reported, never hidden
        errors += 1
        print("error", type(error).__name__, str(error)[:200], flush=True)
    time.sleep(0.05)
print("answers", answers, "errors", errors, flush=True)
"""


def _files(folder: Path) -> list[Path]:
    """Two uploads sharing 100 of their numbers (and one bad row each)."""
    shared = [[f"Shared{i}", f"(415) 555-{i:04d}", "vendor"] for i in range(100)]
    return [
        write_csv(
            folder / f"part{n}.csv",
            HEADER,
            [*shared, *([f"Own{n}-{i}", f"(212) 55{n}-{i:04d}", "webinar"] for i in range(150)), ["Bad", "12", "x"]],
        )
        for n in (1, 2)
    ]


def _import(file: Path, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "callaro_pipeline.cli", "import", str(file), "--campaign", "spring"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _outcome(home: Path) -> tuple:
    con = open_lake(home)
    try:
        return (
            con.execute("SELECT count(*), count(DISTINCT phone_e164) FROM contacts").fetchone(),
            con.execute("SELECT count(*), count(DISTINCT contact_id) FROM campaign_contacts").fetchone(),
            # (rows of one upload already in the book from the other are `duplicate` only when it merged first)
            con.execute("SELECT count(*) FROM rejected_rows WHERE code <> 'duplicate'").fetchone(),
            con.execute("SELECT status, count(*) FROM uploads GROUP BY 1").fetchall(),
        )
    finally:
        con.close()


@pytest.mark.slow
def test_concurrent_imports_equal_the_sequential_result_and_readers_never_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _files(tmp_path)
    # the two imports one after the other: 100 shared + 150 + 150 numbers, one bad row each, both imported
    sequential = ((400, 400), (400, 400), (2,), [("imported", 2)])
    concurrent_home = install_callaro_env(tmp_path / "concurrent", monkeypatch)
    env = os.environ.copy()
    stop = tmp_path / "stop-reading"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(stop)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        writers = [_import(file, env) for file in files]
        for writer in writers:
            _, err = writer.communicate(timeout=300)
            assert writer.returncode == 0, err[-2000:]
    finally:
        stop.touch()
    out, _ = reader.communicate(timeout=60)
    assert _outcome(concurrent_home) == sequential
    assert out.splitlines()[-1].endswith("errors 0") and int(out.split()[-3]) > 0, out


FIRST_INSTANCE = """
import sys, time
from pathlib import Path
from callaro_pipeline.cli.runner import dagster_instance
go = Path(sys.argv[1])
Path(sys.argv[2]).touch()
while not go.exists():
    time.sleep(0.005)
dagster_instance().get_runs(limit=1)
"""


def test_first_imports_at_once_share_one_dagster_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four processes open the Dagster instance of a fresh CALLARO_HOME at the same instant (what two first
    imports do): each succeeds, none trips over another creating the same SQLite tables."""
    install_callaro_env(tmp_path, monkeypatch)
    go, ready = tmp_path / "go", [tmp_path / f"ready{n}" for n in range(4)]
    openers = [
        subprocess.Popen([sys.executable, "-c", FIRST_INSTANCE, str(go), str(flag)], stderr=subprocess.PIPE, text=True)
        for flag in ready
    ]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.02)
    go.touch()
    for opener in openers:
        _, err = opener.communicate(timeout=120)
        assert opener.returncode == 0, err[-1500:]


# Holds the SQLite catalog's lock as another process does: EXCLUSIVE as a committing writer, SHARED as a reader.
LOCK_HOLDER = """
import sqlite3, sys, time
catalog, mode, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
con = sqlite3.connect(catalog, isolation_level=None)
con.execute("BEGIN EXCLUSIVE" if mode == "writer" else "BEGIN")
con.execute("SELECT count(*) FROM ducklake_snapshot").fetchone()  # a reader's SHARED lock is taken here
print("holding", flush=True)
time.sleep(seconds)
con.execute("COMMIT")
"""


def _hold_catalog_lock(home: Path, mode: str, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(home / "lake" / "catalog.sqlite"), mode, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


# longer than the SQLite scanner's default busy timeout (5 s), under which these failed with "database is locked"
LONGER_THAN_THE_DEFAULT_WAIT = 6.0


def test_a_reader_attaching_during_a_long_commit_of_another_process_waits_for_it(callaro_env: Path) -> None:
    """A commit can take long when it had to wait for a reader first; sessions starting meanwhile wait for it."""
    from callaro_pipeline.storage.warehouse import Warehouse

    with Warehouse().transaction() as con:
        con.execute("CREATE TABLE probe AS SELECT 1 AS n")
    holder = _hold_catalog_lock(callaro_env, "writer", LONGER_THAN_THE_DEFAULT_WAIT)
    try:
        con = open_lake(callaro_env)
        assert con.execute("SELECT count(*) FROM probe").fetchone() == (1,)
        con.close()
    finally:
        holder.wait(timeout=30)
    assert holder.returncode == 0


def test_a_commit_while_another_process_reads_for_long_waits_for_the_reader(callaro_env: Path) -> None:
    """An analyst's long query holds a read lock on the catalog; a commit waits for it instead of failing."""
    from callaro_pipeline.storage.warehouse import Warehouse

    with Warehouse().transaction() as con:
        con.execute("CREATE TABLE probe AS SELECT 1 AS n")
    holder = _hold_catalog_lock(callaro_env, "reader", LONGER_THAN_THE_DEFAULT_WAIT)
    try:
        with Warehouse().transaction() as con:
            con.execute("INSERT INTO probe VALUES (2)")
    finally:
        holder.wait(timeout=30)
    con = open_lake(callaro_env)
    assert con.execute("SELECT count(*) FROM probe").fetchone() == (2,)
    con.close()

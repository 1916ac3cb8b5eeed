"""Several machines (issue 15): a throwaway Postgres holds the DuckLake catalog and Dagster's instance; a Dagster
daemon with the queued run coordinator (deploy/dagster.yaml as committed) starts the runs that `callaro import
--submit` enqueues — 4 uploads of different campaigns and 2 of one campaign — while a reader process queries the
lake the whole time. The warehouse must then equal importing the same files one by one into an embedded
installation (SQLite catalog, runs in the command's process)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from callaro_pipeline.core.project_paths import PROJECT_ROOT
from callaro_pipeline.defs.run_tags import UPLOAD_TAG
from callaro_pipeline.storage import dnc_loads
from callaro_pipeline.storage.warehouse import Warehouse
from callaro_pipeline_tests.conftest import cli, running, write_csv
from callaro_pipeline_tests.postgres import create_database

pytestmark = pytest.mark.slow

# (campaign, file) in submission order: c5's two files share contacts (duplicates across uploads); c5 first, so
# that its second upload, which waits for the first (one run per campaign at a time), is not last to start.
ORDER = [("c5", "206"), ("c1", "415"), ("c2", "212"), ("c3", "312"), ("c4", "617"), ("c5", "206b")]
DNC_LISTED = ["4155550103", "2125550103", "3125550103", "6175550103", "2065550103", "2065550112"]
# Tables as analysts see them, with what legitimately differs between two installations left out (times, build
# ids, paths under the home); upload ids are replaced by the file each upload came from.
TABLES = ("contacts", "campaign_contacts", "campaign_audiences", "suppressed_contacts", "dnc", "rejected_rows")
DIFFERS = {"added_at", "build_id", "next_call_start_utc", "built_at", "created_at", "updated_at", "evaluated_at"}
UPLOAD_COLUMNS = ("upload_id", "first_upload_id", "last_upload_id")
# inside JSON values (an audience row's `dnc_snapshot`): the DNC load's id and time of each installation
MADE_HERE = re.compile(r"dnc-\d{8}T\d{6}-[0-9a-f]+|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?")

READER = """
import sys, time
from pathlib import Path
import duckdb
from callaro_pipeline.storage.lake import instance_config, LakeLocation, attach
catalog, data_path, stop = sys.argv[1:]
con = duckdb.connect(config=instance_config())
attach(con, LakeLocation(catalog=catalog, data_path=data_path), read_only=True)
queries = errors = most = 0
while not Path(stop).exists():
    try:
        most = max(most, con.execute("SELECT count(*) FROM contacts").fetchone()[0])
        con.execute("SELECT count(*) FROM campaign_audiences").fetchone()
        queries += 1
    except Exception as error:
        errors += 1
        print(type(error).__name__, str(error)[:300], file=sys.stderr, flush=True)
    time.sleep(2.0)  # a query on the Postgres catalog costs ~0.1 s of CPU: the reader must not crowd the runs
print(queries, errors, most, flush=True)
"""


def contacts_file(folder: Path, name: str) -> Path:
    """A few rows: valid contacts, one DNC-listed number, an in-file duplicate, an invalid phone; `206b` repeats
    some of `206`'s contacts (duplicates across the two uploads of campaign c5) and adds its own."""
    area = name[:3]
    again = [101, 102, 103] if name == "206b" else []
    numbers = [f"{area}555{i:04d}" for i in [*again, *range(110 if again else 101, 123 if again else 113)]]
    rows = [[f"First{n[-3:]}", f"Last{area}", f"({n[:3]}) {n[3:6]}-{n[6:]}", f"p{n[-3:]}@example.com"] for n in numbers]
    rows.append(rows[0][:2] + [rows[0][2], "dup@example.com"])  # same phone again in the file
    rows.append(["Broken", "Row", "12345", ""])
    return write_csv(folder / f"leads-{name}.csv", ["First Name", "Last Name", "Phone Number", "Email"], rows)


def installation(base: Path, **extra: str) -> dict[str, str]:
    """CALLARO_HOME and a copy of the project's config whose compliance owner allows ad-hoc campaigns without the
    national list and consent (the daemon's runs do not share the test process's patched defaults)."""
    home, config = base / "home", base / "config"
    (home / "dagster").mkdir(parents=True)
    shutil.copytree(PROJECT_ROOT / "config", config)
    (config / "campaigns" / "_defaults.yaml").write_text(
        "require_national_dnc: false\nrequire_consent: false\n", encoding="utf-8"
    )
    return {"CALLARO_HOME": str(home), "CALLARO_CONFIG": str(config), "DAGSTER_HOME": str(home / "dagster"), **extra}


def load_dnc(env: dict[str, str], folder: Path) -> None:
    listed = folder / "internal-dnc.txt"
    listed.write_text("\n".join(DNC_LISTED) + "\n", encoding="utf-8")
    store = Warehouse(
        home=env["CALLARO_HOME"], catalog=env.get("CALLARO_CATALOG", ""), data_path=env.get("CALLARO_DATA_PATH", "")
    )
    with store.transaction() as con:
        dnc_loads.import_dnc_file(con, listed, source="internal")


@contextlib.contextmanager
def environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Iterator[None]:
    with monkeypatch.context() as patch:
        for name in ("CALLARO_CATALOG", "CALLARO_DATA_PATH"):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        yield


def normalized(value: object, labels: dict[str, str]) -> str:
    """A value as text, with this installation's DNC load ids and times, and upload ids (in messages such as
    "already in this campaign (upload ...)"), replaced by what is the same in both."""
    text = MADE_HERE.sub("<made here>", str(value))
    for upload_id, name in labels.items():
        text = text.replace(upload_id, name)
    return text


def warehouse_tables(env: dict[str, str], labels: dict[str, str]) -> dict[str, list[tuple]]:
    """Every table above, sorted, with upload ids replaced by file names and the differing columns left out."""
    store = Warehouse(
        home=env["CALLARO_HOME"], catalog=env.get("CALLARO_CATALOG", ""), data_path=env.get("CALLARO_DATA_PATH", "")
    )
    tables = {}
    with store.read() as con:
        for table in TABLES:
            frame = con.execute(f"SELECT * FROM {table}").pl()
            frame = frame.drop([c for c in frame.columns if c in DIFFERS or c.endswith("_at")])
            frame = frame.with_columns(
                pl.col(c).replace_strict(labels, default=None) for c in UPLOAD_COLUMNS if c in frame.columns
            )
            rows = sorted(tuple(normalized(v, labels) for v in row) for row in frame.iter_rows())
            tables[table] = [tuple(frame.columns), *rows]
        uploads = con.execute(
            "SELECT upload_id, status, rows_read, imported, rejected, duplicates, suppressed FROM uploads"
        ).fetchall()
    tables["uploads"] = sorted((labels[u], *rest) for u, *rest in uploads)
    return tables


def test_submitted_imports_on_a_shared_catalog_equal_one_by_one(
    tmp_path: Path, postgres_conninfo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    suffix = uuid.uuid4().hex[:10]
    catalog = "postgres:" + create_database(postgres_conninfo, f"lake_{suffix}")
    dagster_db = dict(part.split("=", 1) for part in create_database(postgres_conninfo, f"dagster_{suffix}").split())
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    # the committed example as is: its daemon also runs the automation sensor, which must start no run of its own
    shutil.copyfile(PROJECT_ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    data_path = str(tmp_path / "shared-data") + "/"
    shared = installation(
        tmp_path / "shared",
        CALLARO_CATALOG=catalog,
        CALLARO_DATA_PATH=data_path,
        DAGSTER_HOME=str(dagster_home),
        DAGSTER_PG_HOST=dagster_db["host"],
        DAGSTER_PG_PORT=dagster_db["port"],
        DAGSTER_PG_USER=dagster_db["user"],
        DAGSTER_PG_PASSWORD="",
        DAGSTER_PG_DB=dagster_db["dbname"],
    )
    files = {name: contacts_file(tmp_path, name) for _, name in ORDER}
    daemon_env = os.environ | shared
    load_dnc(shared, tmp_path)  # the lake exists before the reader attaches

    stop = tmp_path / "stop-reader"
    daemon_command = [
        str(Path(sys.executable).parent / "dagster-daemon"),
        "run",
        "-w",
        str(PROJECT_ROOT / "workspace.yaml"),
    ]
    embedded = installation(tmp_path / "embedded")
    load_dnc(embedded, tmp_path)
    with (
        running(daemon_command, daemon_env, tmp_path / "daemon.log") as daemon,
        running(
            [sys.executable, "-c", READER, catalog, data_path, str(stop)], daemon_env, tmp_path / "reader.log"
        ) as reader,
    ):
        with environment(monkeypatch, shared):
            submitted = submit_all(files)
        # meanwhile, the same files one by one into the embedded installation (in this process, in order)
        with environment(monkeypatch, embedded):
            labels = import_one_by_one(files)
        with environment(monkeypatch, shared):
            for upload_id in submitted:
                waited = cli("report", upload_id, "--wait", "--timeout", "600", "--json")
                log = (tmp_path / "daemon.log").read_text()[-3000:]
                assert daemon.poll() is None and waited.code == 0, (waited.out + waited.err)[-2000:] + log
                assert waited.json()["status"] == "imported"
            assert started_runs(dagster_home) == sorted(submitted), "only the submitted runs ran (no automation run)"
        stop.touch()
        reader.wait(timeout=60)
    queries, errors, most = map(int, (tmp_path / "reader.log").read_text().split()[-3:])
    assert errors == 0 and queries > 0, (tmp_path / "reader.log").read_text()[-2000:]
    assert most > 0, "the reader saw contacts arrive"

    parallel, one_by_one = warehouse_tables(shared, submitted), warehouse_tables(embedded, labels)
    for table, rows in one_by_one.items():
        assert parallel[table] == rows, table
    assert len(one_by_one["contacts"]) > 1 + 60 and len(one_by_one["suppressed_contacts"]) > 1 + 5
    assert len(one_by_one["campaign_audiences"]) > 1 + 60
    print(f"several machines: {time.monotonic() - started:.1f}s")


def submit_all(files: dict[str, Path]) -> dict[str, str]:
    """`callaro import --submit` of every file, in order: one stable line each; the first upload's report says
    it is queued or running (or, on a fast machine, already imported). Returns upload id -> file name."""
    submitted: dict[str, str] = {}
    for campaign, name in ORDER:
        ran = cli("import", files[name], "--campaign", campaign, "--submit")
        assert ran.code == 0 and not ran.err.strip(), ran.err
        words = ran.out.split()
        assert ran.out.count("\n") == 1 and words[:2] == ["queued", "upload"] and words[3] == "run", ran.out
        assert words[5:] == ["campaign", campaign], ran.out
        submitted[words[2]] = name
    report = cli("report", next(iter(submitted)))
    assert report.code == 0 and report.out.split("\n")[1].split()[1] in ("queued", "running", "imported"), report.out
    return submitted


def started_runs(dagster_home: Path) -> list[str]:
    """The upload of every run the shared instance has: the automation sensor (running in the daemon) must not
    continue the chain of an upload whose `import_upload` run runs it whole."""
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        return sorted(run.tags.get(UPLOAD_TAG, run.job_name) for run in instance.get_runs())
    finally:
        instance.dispose()


def import_one_by_one(files: dict[str, Path]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for campaign, name in ORDER:
        ran = cli("import", files[name], "--campaign", campaign, "--json")
        assert ran.code == 0, ran.err
        labels[ran.json()["upload_id"]] = name
    return labels

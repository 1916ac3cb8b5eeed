"""Lake maintenance: the compliance owner's retention decides how far back time travel reaches; the data of the
current snapshot never changes; the Dagster job runs it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.defs.maintenance.assets import lake_maintenance, lake_maintenance_schedule
from callaro_pipeline.storage.maintenance import DEFAULT_RETENTION_DAYS, lake_settings, maintain
from callaro_pipeline.storage.warehouse import Warehouse, replace_partition

PROBLEMS = pl.DataFrame({"row_number": [2, 3], "code": ["invalid_phone", "invalid_email"], "message": ["x", "y"]})


def _lake_with_history(home: Path) -> tuple[Warehouse, int]:
    """Three commits of rejected_rows for u1 (2, then 1, then 2 rows); returns the store and the first's snapshot."""
    store = Warehouse(home=str(home))
    with store.transaction() as con:
        replace_partition(con, "rejected_rows", "u1", PROBLEMS)
    with store.read() as con:
        first = con.execute("SELECT max(snapshot_id) FROM lake.snapshots()").fetchone()[0]
    for frame in (PROBLEMS.head(1), PROBLEMS):
        with store.transaction() as con:
            replace_partition(con, "rejected_rows", "u1", frame)
    return store, first


def test_retention_expires_older_snapshots_and_keeps_the_current_data(tmp_path: Path) -> None:
    store, first = _lake_with_history(tmp_path / "home")
    with store.read() as con:
        assert con.execute(f"SELECT count(*) FROM rejected_rows AT (VERSION => {first})").fetchone() == (2,)
    with store.connect() as con:
        kept = maintain(con, retention_days=DEFAULT_RETENTION_DAYS)
        assert kept["expired_snapshots"] == 0 and kept["snapshots_after"] == kept["snapshots_before"]
        done = maintain(con, retention_days=0, grace_hours=0)
    assert done["expired_snapshots"] > 0 and done["snapshots_after"] < done["snapshots_before"]
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM rejected_rows WHERE upload_id = 'u1'").fetchone() == (2,)
        with pytest.raises(duckdb.Error):
            con.execute(f"SELECT count(*) FROM rejected_rows AT (VERSION => {first})").fetchall()


def test_the_retention_comes_from_the_compliance_owners_file(tmp_path: Path) -> None:
    assert lake_settings(tmp_path).snapshot_retention_days == DEFAULT_RETENTION_DAYS
    (tmp_path / "lake.yaml").write_text("snapshot_retention_days: 400\n", encoding="utf-8")
    assert lake_settings(tmp_path).snapshot_retention_days == 400
    for bad in ("snapshot_retention_days: 0\n", "snapshot_retention_days: '30'\n", "retention: 30\n"):
        (tmp_path / "lake.yaml").write_text(bad, encoding="utf-8")
        with pytest.raises(ConfigError, match="lake.yaml"):
            lake_settings(tmp_path)


def test_the_maintenance_job_runs_with_the_configured_retention(tmp_path: Path, monkeypatch) -> None:
    store, _ = _lake_with_history(tmp_path / "home")
    config = tmp_path / "config"
    (config / "campaigns").mkdir(parents=True)
    (config / "lake.yaml").write_text("snapshot_retention_days: 30\n", encoding="utf-8")
    monkeypatch.setenv("CALLARO_CONFIG", str(config))
    result = lake_maintenance.execute_in_process(resources={"warehouse": store})
    assert result.success
    done = result.output_for_node("maintain_lake")
    assert done["retention_days"] == 30 and done["expired_snapshots"] == 0
    assert lake_maintenance_schedule.job_name == "lake_maintenance"

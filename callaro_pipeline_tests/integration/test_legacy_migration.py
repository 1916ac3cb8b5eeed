"""A warehouse from before the lakehouse (CALLARO_HOME/warehouse.duckdb) moves into the lake once, with counts
checked; a lake that already has rows is never overwritten."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from callaro_pipeline.storage import legacy, migrations
from callaro_pipeline.storage.warehouse import Warehouse


def _old_warehouse(home: Path) -> Path:
    path = home / legacy.LEGACY_FILE
    con = duckdb.connect(str(path))
    con.execute(migrations.schema_sql())
    con.execute(
        "INSERT INTO uploads (upload_id, campaign, stored_path, sha256, received_at, status) "
        "SELECT 'u' || i, 'spring', 'x', 'y', TIMESTAMP '2026-11-01' + INTERVAL (i) MINUTE, 'imported' "
        "FROM range(3) t(i)"
    )
    con.execute(
        "INSERT INTO rejected_rows (upload_id, row_number, code, message) "
        "SELECT 'u0', i, 'invalid_phone', 'not a number' FROM range(5) t(i)"
    )
    con.close()
    return path


@pytest.fixture
def old_home(tmp_path: Path) -> tuple[Path, Path, Warehouse]:
    """A home holding an old warehouse file: (home, the file, the home's lake)."""
    home = tmp_path / "home"
    home.mkdir()
    return home, _old_warehouse(home), Warehouse(home=str(home))


def test_an_old_warehouse_file_moves_into_the_lake_with_equal_counts(old_home: tuple[Path, Path, Warehouse]) -> None:
    home, old, store = old_home
    with store.connect() as con:
        copied = legacy.copy_legacy_tables(con, old)
    assert copied["uploads"] == 3 and copied["rejected_rows"] == 5 and copied["contacts"] == 0
    retired = legacy.retire(old)
    assert retired.is_file() and legacy.legacy_warehouse(home) is None
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM uploads").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM rejected_rows WHERE upload_id = 'u0'").fetchone() == (5,)


def test_a_lake_with_rows_is_never_overwritten(old_home: tuple[Path, Path, Warehouse]) -> None:
    _, old, store = old_home
    with store.connect() as con:
        legacy.copy_legacy_tables(con, old)
        with pytest.raises(legacy.MigrationFailed, match="not empty"):
            legacy.copy_legacy_tables(con, old)
    with store.read() as con:
        assert con.execute("SELECT count(*) FROM uploads").fetchone() == (3,)  # the failed second copy rolled back


def test_callaro_migrate_moves_the_file_once_and_says_so(callaro_env: Path, capsys) -> None:
    from callaro_pipeline.cli.app import main

    _old_warehouse(callaro_env)
    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert "uploads" in out and "kept as warehouse.duckdb.migrated" in out and "rebuilt" in out
    with Warehouse().read() as con:
        assert con.execute("SELECT count(*) FROM uploads").fetchone() == (3,)
    assert main(["migrate"]) == 2  # nothing left to migrate: one line, exit 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing to migrate" in err

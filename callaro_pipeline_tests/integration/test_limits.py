"""Files over the configured size, row or column limit are refused before they are read into memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from callaro_pipeline.cli.app import main
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.project_paths import PROJECT_ROOT
from callaro_pipeline.core.table_frames import ReadLimits
from callaro_pipeline_tests.conftest import open_lake

SAMPLE = PROJECT_ROOT / "data" / "samples" / "demo_contacts.csv"  # 62 data rows, 12 columns, ~5 KB


def test_limits_come_from_the_environment() -> None:
    assert ReadLimits.from_env({}) == ReadLimits()
    limits = ReadLimits.from_env(
        {"CALLARO_MAX_UPLOAD_BYTES": "1_000", "CALLARO_MAX_ROWS": " 10 ", "CALLARO_MAX_COLUMNS": "3"}
    )
    assert (limits.max_bytes, limits.max_rows, limits.max_columns) == (1000, 10, 3)
    for bad in ("0", "-5", "ten", "1e6", "1.5"):
        with pytest.raises(ConfigError, match="CALLARO_MAX_ROWS must be a positive whole number"):
            ReadLimits.from_env({"CALLARO_MAX_ROWS": bad})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CALLARO_MAX_UPLOAD_BYTES", "1000", "the limit is 1.0 KB"),
        ("CALLARO_MAX_ROWS", "10", "the limit is 10"),
    ],
    ids=["bytes", "rows"],
)
def test_import_over_a_limit_exits_2_with_one_line(
    callaro_env: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    message: str,
) -> None:
    read: list[Path] = []
    real_read_bytes = Path.read_bytes

    def spy(self: Path) -> bytes:  # which stored originals get loaded into memory
        if self.name.startswith("original"):
            read.append(self)
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    monkeypatch.setenv(variable, value)
    code = main(["import", str(SAMPLE), "--campaign", "limits"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert line.startswith("callaro: ") and message in line
    # over the byte limit, the file is refused from its size alone, before it is read
    assert len(read) == (0 if variable == "CALLARO_MAX_UPLOAD_BYTES" else 1)
    con = open_lake(callaro_env)
    try:
        assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM raw_rows").fetchone()[0] == 0
    finally:
        con.close()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CALLARO_MAX_UPLOAD_BYTES", "1000", " KB; the limit is 1.0 KB"),
        ("CALLARO_MAX_ROWS", "10", "the limit is 10"),
        ("CALLARO_MAX_COLUMNS", "5", "the table has 12 columns; the limit is 5"),
        ("CALLARO_MAX_ROWS", "lots", "CALLARO_MAX_ROWS must be a positive whole number"),
    ],
    ids=["bytes", "rows", "columns", "bad-setting"],
)
def test_preview_honours_the_same_limits(
    callaro_env: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(variable, value)
    code = main(["preview", str(SAMPLE), "--campaign", "limits"])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert message in line

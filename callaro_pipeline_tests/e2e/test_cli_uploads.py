"""`callaro uploads [--campaign C] [--json]` and `callaro preview --default-region`, through `cli.main`.

Uploads are landed and registered directly (no Dagster run): listing reads only the uploads table.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from callaro_pipeline.core.landing import land_upload
from callaro_pipeline.core.uploads import UploadOptions
from callaro_pipeline.storage.uploads import register_upload, update_upload
from callaro_pipeline.storage.warehouse import Warehouse
from callaro_pipeline_tests.conftest import cli, write_csv


def _register(tmp_path: Path, campaign: str, name: str, when: datetime, **fields: object) -> str:
    warehouse = Warehouse()
    source = write_csv(tmp_path / name, ["first_name", "phone"], [["Ann", "4155550134"]])
    landed = land_upload(source, campaign=campaign, original_name=name, uploads_dir=warehouse.paths.uploads, now=when)
    with warehouse.transaction() as con:
        register_upload(con, landed, UploadOptions())
        if fields:
            update_upload(con, landed.upload_id, **fields)
    return landed.upload_id


def test_uploads_lists_every_upload_newest_first_with_status_and_counts(callaro_env: Path, tmp_path: Path) -> None:
    first = _register(
        tmp_path,
        "spring",
        "a.csv",
        datetime(2026, 3, 1, tzinfo=UTC),
        status="imported",
        rows_read=10,
        imported=8,
        rejected=2,
        duplicates=0,
        suppressed=0,
    )
    second = _register(tmp_path, "spring", "b.csv", datetime(2026, 3, 2, tzinfo=UTC), status="blocked", rows_read=5)
    other = _register(tmp_path, "autumn", "c.csv", datetime(2026, 3, 3, tzinfo=UTC), status="undone", rows_read=1)

    ran = cli("uploads", "--json")
    assert ran.code == 0, ran.err
    listed = json.loads(ran.out)
    assert [u["upload_id"] for u in listed] == [other, second, first]
    by_id = {u["upload_id"]: u for u in listed}
    assert by_id[first]["status"] == "imported" and by_id[first]["imported"] == 8 and by_id[first]["rejected"] == 2
    assert by_id[second]["status"] == "blocked" and by_id[second]["rows_read"] == 5
    assert by_id[other]["undone"] is True and by_id[other]["original_name"] == "c.csv"

    ran = cli("uploads", "--campaign", "spring", "--json")
    assert [u["upload_id"] for u in json.loads(ran.out)] == [second, first]

    text = cli("uploads", "--campaign", "spring")
    assert text.code == 0
    lines = text.out.splitlines()
    assert lines[0].split()[:4] == ["upload", "campaign", "received", "(UTC)"]
    assert first in lines[2] and "imported" in lines[2] and " 8 " in f" {lines[2]} "
    assert second in lines[1] and "blocked" in lines[1]


def test_uploads_shows_the_rows_a_blocked_upload_held_back(callaro_env: Path, tmp_path: Path) -> None:
    """`rows_read = imported + rejected + duplicates + suppressed + blocked` is visible in the listing, as in
    `callaro report`: a blocked upload counts the valid rows its gate kept from the book, an imported one 0."""
    counts = {"rows_read": 10, "rejected": 2, "duplicates": 1, "suppressed": 0}
    blocked = _register(tmp_path, "spring", "a.csv", datetime(2026, 3, 1, tzinfo=UTC), status="blocked", **counts)
    imported = _register(
        tmp_path, "spring", "b.csv", datetime(2026, 3, 2, tzinfo=UTC), status="imported", imported=7, **counts
    )

    ran = cli("uploads", "--json")
    assert ran.code == 0, ran.err
    by_id = {u["upload_id"]: u for u in json.loads(ran.out)}
    assert by_id[blocked]["blocked"] == 7 and not by_id[blocked]["imported"]  # never set: listed as null / "-"
    assert by_id[imported]["blocked"] == 0
    for listed in by_id.values():
        sorted_rows = sum(listed[k] or 0 for k in ("imported", "rejected", "duplicates", "suppressed", "blocked"))
        assert sorted_rows == listed["rows_read"]
    report = json.loads(cli("report", blocked, "--json").out)
    assert report["blocked"] == by_id[blocked]["blocked"]

    lines = cli("uploads").out.splitlines()
    header = lines[0].split()
    assert header[-1] == "blocked"
    assert lines[1].split()[0] == imported and lines[1].split()[-1] == "0"
    assert lines[2].split()[0] == blocked and lines[2].split()[-1] == "7"


def test_uploads_of_an_empty_home_and_a_bad_campaign_name(callaro_env: Path) -> None:
    ran = cli("uploads")
    assert ran.code == 0 and ran.out.strip() == "no uploads"
    ran = cli("uploads", "--campaign", "../etc")
    assert ran.code == 2 and ran.out == "" and len(ran.err.strip().splitlines()) == 1


def test_preview_default_region_reads_national_numbers_of_that_country(callaro_env: Path, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "de.csv", ["first_name", "phone"], [["Jürgen", "030 901820"]])
    us = cli("preview", source, "--campaign", "berlin")
    assert us.code == 0, us.err
    assert "+4930901820" not in us.out
    de = cli("preview", source, "--campaign", "berlin", "--default-region", "de")
    assert de.code == 0, de.err
    assert "+4930901820" in de.out and "would import 1" in de.out
    bad = cli("preview", source, "--campaign", "berlin", "--default-region", "Germany")
    assert bad.code == 2 and len(bad.err.strip().splitlines()) == 1


def test_the_audience_export_carries_the_phone_extension(tmp_path: Path) -> None:
    import polars as pl
    from test_audiences import ANN, BOB, NEW_YORK, built_campaign

    from callaro_pipeline.storage.audiences import export_audience

    warehouse = Warehouse(home=str(tmp_path))
    built_campaign(
        warehouse, {"phone_e164": ANN, **NEW_YORK, "phone_extension": "204"}, {"phone_e164": BOB, **NEW_YORK}
    )
    with warehouse.connect() as con:
        assert export_audience(con, "spring", tmp_path / "a.parquet") == 2
        export_audience(con, "spring", tmp_path / "a.csv")
    exported = dict(pl.read_parquet(tmp_path / "a.parquet").select("phone_e164", "phone_extension").rows())
    assert exported == {ANN: "204", BOB: None}
    assert "phone_extension" in (tmp_path / "a.csv").read_text(encoding="utf-8").splitlines()[0]


def test_drift_that_unmaps_a_field_blocks_a_recurring_upload_and_added_columns_do_not(
    callaro_env: Path, tmp_path: Path
) -> None:
    first = write_csv(tmp_path / "week1.csv", ["Name", "Phone", "State"], [["Ann Lee", "4155550134", "CA"]])
    ran = cli("import", first, "--campaign", "vendor", "--json")
    assert ran.code == 0, ran.err
    added = write_csv(
        tmp_path / "week2.csv", ["Name", "Phone", "State", "Notes"], [["Bob Ray", "4155550135", "CA", "x"]]
    )
    ran = cli("import", added, "--campaign", "vendor", "--json")
    summary = json.loads(ran.out.strip().splitlines()[-1])
    assert ran.code == 0 and summary["column_drift"]["added"] == ["Notes"], ran.err
    dropped = write_csv(tmp_path / "week3.csv", ["Name", "Phone", "Territory"], [["Cy Ro", "4155550136", "CA"]])
    ran = cli("import", dropped, "--campaign", "vendor", "--json")
    summary = json.loads(ran.out.strip().splitlines()[-1])
    assert ran.code == 1 and summary["status"] == "blocked", (summary, ran.err)
    failed = [check for check in summary["checks"] if not check["passed"]]
    assert failed and "state (was column 'State')" in failed[0]["detail"]
    assert summary["imported"] == 0

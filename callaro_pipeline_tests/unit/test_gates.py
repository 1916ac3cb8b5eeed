"""The two blocking gates, run for real: Pandera on polars frames, Great Expectations with Data Docs on disk."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.gates import GX_GATE, GX_SUITE_NAME, OPTIONAL_TEXT_COLUMNS, PANDERA_GATE, GxOutcome
from callaro_pipeline.core.gx_gate import (
    UploadFigures,
    great_expectations_gate,
    gx_gate_result,
    suite_parameters,
    upload_summary,
)
from callaro_pipeline.core.gx_side_process import (
    GxSideProcess,
    great_expectations_in_side_process,
    validate_in_side_process,
)
from callaro_pipeline.core.gx_suite import validate_upload_summary
from callaro_pipeline.core.pandera_gate import pandera_gate
from callaro_pipeline.core.project_paths import PROJECT_ROOT

PHONES = ["+14155550171", "+442079460958", "+4930123456", "+12125550199"]


def contacts(**overrides: list) -> pl.DataFrame:
    """A valid validated-contacts frame of four rows; keyword arguments replace whole columns."""
    rows = len(PHONES)
    columns: dict[str, pl.Series] = {
        "row_number": pl.Series([2, 3, 4, 5], dtype=pl.Int64),
        "phone_e164": pl.Series(PHONES, dtype=pl.Utf8),
        **{name: pl.Series([None] * rows, dtype=pl.Utf8) for name in OPTIONAL_TEXT_COLUMNS},
        "first_name": pl.Series(["Ada", "Grace", "Konrad", "Barbara"], dtype=pl.Utf8),
        "consent": pl.Series(["yes", "no", "unknown", "yes"], dtype=pl.Utf8),
        "timezone": pl.Series(["America/Los_Angeles", "Europe/London", "Europe/Berlin", None], dtype=pl.Utf8),
        "timezone_candidates": pl.Series(
            [None, None, None, ["America/New_York", "America/Chicago"]], dtype=pl.List(pl.Utf8)
        ),
        "timezone_source": pl.Series(["provided", "phone", "phone", "ambiguous"], dtype=pl.Utf8),
    }
    for name, values in overrides.items():
        columns[name] = pl.Series(values, dtype=columns[name].dtype)
    return pl.DataFrame(columns)


def assert_no_values_leak(result, *values: str) -> None:
    exposed = result.detail + repr(result.metadata)
    for value in values:
        assert value not in exposed


# --- Pandera ---------------------------------------------------------------------------------------------


def test_pandera_passes_a_valid_frame_and_ignores_extra_columns():
    frame = contacts().with_columns(pl.lit("upload-1").alias("upload_id"))
    result = pandera_gate(frame)
    assert result.name == PANDERA_GATE
    assert result.passed, result.detail
    assert result.metadata == {"rows_checked": 4, "rows_failing": 0, "failing_checks": 0}
    assert "4 validated contacts" in result.detail


@pytest.mark.parametrize(
    ("column", "values", "failure_key", "leaked"),
    [
        (
            "phone_e164",
            ["+14155550171", "4155550134", "+4930123456", "+12125550199"],
            "phone_e164.e164_format",
            "4155550134",
        ),
        (
            "phone_e164",
            ["+14155550171", "+0123456789", "+4930123456", "+12125550199"],
            "phone_e164.e164_format",
            "+0123456789",
        ),
        ("phone_e164", ["+14155550171", None, "+4930123456", "+12125550199"], "phone_e164.not_nullable", None),
        (
            "timezone",
            ["America/Los_Angeles", "Mars/Olympus_Mons", None, None],
            "timezone.iana_timezone",
            "Mars/Olympus_Mons",
        ),
        ("timezone", ["EST-ish", None, None, None], "timezone.iana_timezone", "EST-ish"),
        (
            "timezone_source",
            ["provided", "guessed", "phone", "ambiguous"],
            "timezone_source.timezone_source_value",
            "guessed",
        ),
        ("timezone_source", ["provided", None, "phone", "ambiguous"], "timezone_source.not_nullable", None),
        ("consent", ["yes", "maybe", "unknown", "yes"], "consent.consent_value", "maybe"),
        ("row_number", [1, 3, 4, 5], "row_number.row_number_after_header", None),
    ],
)
def test_pandera_counts_each_broken_rule_without_showing_the_value(column, values, failure_key, leaked):
    result = pandera_gate(contacts(**{column: values}))
    assert not result.passed
    assert result.metadata[f"failures.{failure_key}"] == 1
    assert result.metadata["rows_failing"] == 1
    assert result.metadata["rows_checked"] == 4
    assert failure_key in result.detail
    assert "1 of 4 validated contacts" in result.detail
    if leaked:
        assert_no_values_leak(result, leaked)


def test_pandera_duplicate_phone_counts_both_rows_and_hides_the_number():
    duplicated = "+14155550171"
    result = pandera_gate(contacts(phone_e164=[duplicated, duplicated, "+4930123456", "+12125550199"]))
    assert not result.passed
    assert result.metadata["failures.phone_e164_phone_extension.multiple_fields_uniqueness"] == 2
    assert result.metadata["rows_failing"] == 2
    assert_no_values_leak(result, duplicated, "4155550171", "Ada", "Grace")


def test_pandera_one_switchboard_number_with_different_extensions_is_not_a_duplicate():
    board = "+14155550171"
    both = pandera_gate(
        contacts(phone_e164=[board, board, board, "+12125550199"], phone_extension=["12", "34", None, None])
    )
    assert both.passed, both.detail
    same = pandera_gate(
        contacts(phone_e164=[board, board, "+4930123456", "+12125550199"], phone_extension=["12", "12", None, None])
    )
    assert not same.passed
    assert same.metadata["failures.phone_e164_phone_extension.multiple_fields_uniqueness"] == 2
    assert_no_values_leak(same, board, "4155550171")


def test_pandera_duplicate_row_number_fails():
    result = pandera_gate(contacts(row_number=[2, 3, 3, 5]))
    assert not result.passed
    assert result.metadata["failures.row_number.field_uniqueness"] == 2


def test_pandera_reports_several_rules_at_once():
    result = pandera_gate(
        contacts(
            phone_e164=["+14155550171", "555-0134", None, "+12125550199"],
            timezone=["Nowhere/City", None, None, None],
            timezone_source=["provided", "phone", "phone", "psychic"],
        )
    )
    assert not result.passed
    assert result.metadata["failing_checks"] == 4
    assert result.metadata["rows_failing"] == 4
    assert_no_values_leak(result, "555-0134", "Nowhere/City", "psychic", "+14155550171")


def test_pandera_wrong_types_and_missing_columns_fail_as_shape_problems():
    wrong_type = contacts().with_columns(pl.col("row_number").cast(pl.Utf8))
    result = pandera_gate(wrong_type)
    assert not result.passed
    assert any(key.startswith("failures.row_number.dtype") for key in result.metadata)

    missing = pandera_gate(contacts().drop("timezone_source"))
    assert not missing.passed
    assert "timezone_source" in missing.detail
    assert "does not have the expected shape" in missing.detail


def test_pandera_metadata_holds_only_counts_and_labels():
    result = pandera_gate(contacts(phone_e164=["+14155550171", "bad", "+4930123456", "+4930123456"]))
    assert all(isinstance(value, int) for value in result.metadata.values())


def test_pandera_passes_a_large_valid_frame():
    rows = 200_000
    frame = pl.select(
        row_number=pl.int_range(2, rows + 2, dtype=pl.Int64),
        phone_e164=pl.format("+1415{}", pl.int_range(1_000_000, 1_000_000 + rows)),
    ).with_columns(
        *[pl.lit(None, dtype=pl.Utf8).alias(name) for name in OPTIONAL_TEXT_COLUMNS],
        pl.lit("unknown").alias("consent"),
        pl.lit("America/Los_Angeles").alias("timezone"),
        pl.lit(None, dtype=pl.List(pl.Utf8)).alias("timezone_candidates"),
        pl.lit("phone").alias("timezone_source"),
    )
    result = pandera_gate(frame)
    assert result.passed, result.detail


# --- Great Expectations ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gx_docs")


def run_gx(docs_root: Path, upload_id: str, **overrides):
    arguments = {
        "upload_id": upload_id,
        "rows_read": 1000,
        "rejected": 42,
        "expected_count": None,
        "max_rejected_share": 0.10,
        "mapped_fields": ["phone", "first_name", "email"],
        "docs_root": docs_root,
    }
    arguments.update(overrides)
    return great_expectations_gate(**arguments)


def test_gx_passes_a_healthy_upload_and_writes_data_docs(docs_root):
    result = run_gx(docs_root, "healthy-upload", expected_count=1000)
    assert result.name == GX_GATE
    assert result.passed, result.detail
    assert result.metadata["expectations_evaluated"] == 4
    assert result.metadata["expectations_failed"] == 0
    assert result.metadata["expected_count"] == 1000
    assert result.metadata["rejected_share"] == pytest.approx(0.042)
    assert "4.2%" in result.detail and "10%" in result.detail

    index = Path(result.docs_path)
    assert index == docs_root / "healthy-upload" / "index.html"
    html = index.read_text(encoding="utf-8")
    assert GX_SUITE_NAME in html
    assert "healthy-upload" in html  # the run is named after the upload
    validation_pages = list((docs_root / "healthy-upload" / "validations").rglob("*.html"))
    assert len(validation_pages) == 1
    assert "rejected_share" in validation_pages[0].read_text(encoding="utf-8")


def test_gx_without_expected_count_still_evaluates_expectations(docs_root):
    result = run_gx(docs_root, "no-expected-count")
    assert result.passed, result.detail
    assert result.metadata["expectations_evaluated"] > 0
    assert "expected_count" not in result.metadata


def test_gx_fails_when_the_row_count_differs_from_the_expected_count(docs_root):
    result = run_gx(docs_root, "short-file", rows_read=998, rejected=0, expected_count=1000)
    assert not result.passed
    assert result.metadata["failed_rules"] == "row_count"
    assert result.detail == "998 rows read but 1,000 were expected"
    assert Path(result.docs_path).is_file()


def test_gx_fails_when_the_rejected_share_exceeds_the_limit(docs_root):
    result = run_gx(docs_root, "too-many-rejects", rows_read=1000, rejected=142)
    assert not result.passed
    assert result.metadata["failed_rules"] == "rejected_share"
    assert result.detail == "rejected share 14.2% exceeds the campaign limit of 10%"


def test_gx_accepts_a_rejected_share_exactly_at_the_limit(docs_root):
    assert run_gx(docs_root, "at-the-limit", rows_read=1000, rejected=100).passed


def test_gx_fails_without_a_mapped_phone(docs_root):
    result = run_gx(docs_root, "no-phone", mapped_fields=["first_name", "email"])
    assert not result.passed
    assert result.metadata["failed_rules"] == "phone_mapped"
    assert "phone" in result.detail


def test_gx_fails_without_a_name_or_external_id(docs_root):
    result = run_gx(docs_root, "no-identity", mapped_fields=["phone", "email", "company"])
    assert not result.passed
    assert result.metadata["failed_rules"] == "identity_mapped"
    assert "first_name, last_name, full_name, external_id" in result.detail
    assert run_gx(docs_root, "external-id-only", mapped_fields=["phone", "external_id"]).passed


def test_gx_fails_an_empty_upload(docs_root):
    result = run_gx(docs_root, "empty", rows_read=0, rejected=0)
    assert not result.passed
    assert result.detail == "the upload has no data rows"


def test_gx_lists_every_failed_rule(docs_root):
    result = run_gx(docs_root, "everything-wrong", rejected=500, expected_count=10, mapped_fields=["email"])
    assert not result.passed
    assert result.metadata["expectations_failed"] == 4
    assert set(result.metadata["failed_rules"].split(",")) == {
        "row_count",
        "rejected_share",
        "phone_mapped",
        "identity_mapped",
    }


def test_gx_docs_of_one_upload_do_not_list_another(docs_root):
    run_gx(docs_root, "first-upload")
    second = run_gx(docs_root, "second-upload")
    pages = list((docs_root / "second-upload" / "validations").rglob("*.html"))
    assert len(pages) == 1
    assert "first-upload" not in Path(second.docs_path).read_text(encoding="utf-8")


def test_gx_rerun_of_an_upload_keeps_only_its_latest_validation(docs_root):
    run_gx(docs_root, "rerun", rejected=500)
    result = run_gx(docs_root, "rerun")
    assert result.passed
    assert len(list((docs_root / "rerun" / "validations").rglob("*.html"))) == 1


def test_gx_refuses_an_upload_id_that_is_not_a_safe_name(docs_root):
    with pytest.raises(ConfigError):
        run_gx(docs_root, "../outside")


def test_data_docs_templates_are_compiled_once_per_process(docs_root):
    from callaro_pipeline.core.gx_templates import COMPILED

    first = run_gx(docs_root, "templates-first")
    compiled = dict(COMPILED.code)
    second = run_gx(docs_root, "templates-second", rejected=500)
    assert compiled and COMPILED.code == compiled  # the second build compiled nothing new
    assert first.passed and not second.passed
    pages = [Path(result.docs_path).read_text(encoding="utf-8") for result in (first, second)]
    assert all("templates-" in page and "</html>" in page for page in pages)


def test_a_suite_that_evaluated_nothing_fails_the_gate(tmp_path):
    figures = UploadFigures(rows_read=10, rejected=0, expected_count=None, max_rejected_share=0.1, mapped_fields=2)
    result = gx_gate_result(GxOutcome(success=True, evaluated=0, rule_success={}), figures, tmp_path / "index.html")
    assert not result.passed
    assert result.metadata["expectations_evaluated"] == 0
    assert "evaluated no expectations" in result.detail
    assert result.docs_path is None


# --- GX in a side process (what `callaro import` uses) ----------------------------------------------------------


def test_gx_in_a_side_process_gives_the_outcome_of_gx_here(docs_root):
    summary = upload_summary(1000, 142, ["phone", "first_name"])
    parameters = suite_parameters(None, 0.10)
    here = validate_upload_summary(summary, parameters, docs_root / "here", "here")
    side = GxSideProcess()
    try:
        there = side.validate(summary, parameters, docs_root / "there", "there")
        again = side.validate(summary, parameters, docs_root / "again", "again")  # it serves the next upload too
        worker = side.pool.submit(os.getpid).result()
    finally:
        side.close()
    assert worker != os.getpid() and {w.pid for w in side.workers} == {worker}
    assert there == again == here
    assert there is not None and not there.success and there.evaluated == 4
    assert (docs_root / "there" / "index.html").is_file()  # the worker wrote the Data Docs
    assert not _running(worker)  # ended by close, not left to tear GX down


def test_the_gate_validates_here_when_the_side_process_is_gone(docs_root):
    side = GxSideProcess()
    os.kill(side.pool.submit(os.getpid).result(), signal.SIGKILL)
    with great_expectations_in_side_process(side):
        assert (
            validate_in_side_process(upload_summary(10, 0, ["phone"]), suite_parameters(None, 0.1), docs_root, "x")
            is None
        )
        result = run_gx(docs_root, "side-process-gone", expected_count=1000)
    assert result.passed and result.metadata["expectations_evaluated"] == 4
    assert (docs_root / "side-process-gone" / "index.html").is_file()


def test_no_side_process_when_gx_is_loaded_here(docs_root):
    run_gx(docs_root, "loaded-here")
    assert "great_expectations" in sys.modules
    before = multiprocessing.active_children()
    with great_expectations_in_side_process():
        assert multiprocessing.active_children() == before
        assert (
            validate_in_side_process(upload_summary(10, 0, ["phone"]), suite_parameters(None, 0.1), docs_root, "y")
            is None
        )


def test_the_spawned_side_process_runs_the_callaro_script_without_importing_dagster():
    """A spawned child runs the parent's main script again as `__mp_main__`: for `callaro` that must stay cheap."""
    script = Path(sys.executable).parent / "callaro"
    check = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__mp_main__'); print(sorted({'dagster', 'duckdb', 'polars'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", check, str(script)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_side_process_ends_when_the_import_that_started_it_is_killed():
    """A `callaro import` killed mid-way (kill -9, an OOM kill) leaves no worker with GX loaded behind."""
    starter = (
        "import os, sys\n"
        "from callaro_pipeline.core.gx_side_process import GxSideProcess\n"
        "if __name__ == '__main__':\n"
        "    side = GxSideProcess()\n"
        "    print(side.pool.submit(os.getpid).result(), flush=True)\n"
        "    sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", starter], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    try:
        worker = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 60
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(worker), f"worker {worker} outlived its parent"


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an orphan is reaped by init, not by this process)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"

"""PII stays private: a canary contact imported through real Dagster runs (one imported, one blocked by both
gates with the canary in their failure cases, one failing with an error that quotes the canary) never shows up
in the run's event log, the compute logs, the instance's files, Data Docs or the command's output; it is only in
the error report and the warehouse, where it belongs."""

from __future__ import annotations

import errno
import json
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._serdes import serialize_value

from callaro_pipeline.cli.app import main
from callaro_pipeline.core import pandera_gate
from callaro_pipeline.core.privacy import withheld_error_text, withheld_failure
from callaro_pipeline.defs.suppress import assets as suppression_assets
from callaro_pipeline_tests.conftest import open_lake

NAME, SURNAME, EMAIL = "Zyxwvut", "Canary", "canary.zyx@example.com"
CANARY_LINE = f"{NAME} {SURNAME}, (415) 867-5309, {EMAIL}"
# the canary in any common spelling: 4158675309, 867-5309, 867.5309, (415) 867 5309, +14158675309, ...
LEAKS = re.compile(rb"867\D{0,3}5309|Zyxwvut|zyxwvut|ZYXWVUT|Canary|canary\.zyx", re.IGNORECASE)
CANARY_FILE = (
    "First Name,Last Name,Phone Number,E-mail,Renewal Date\r\n"
    f"{NAME},{SURNAME},(415) 867-5309,{EMAIL},2026-01-01\r\n"
    "Ann,Lee,(212) 555-0199,ann@example.com,2026-02-01\r\n"
    "Bo,Kim,(646) 201-7789,bo@example.com,\r\n"
    # the same person with broken values: invalid phone, e-mail and custom date, all quoting the canary
    f"{NAME},{SURNAME},867-5309 {NAME},canary.zyx@@example,{NAME} 4158675309\r\n"
    # an unclosed quote: the reader cannot split the line
    f'"{NAME} {SURNAME},(415) 867-5309,{EMAIL}\r\n'
)


def leaks(data: bytes | str) -> list[str]:
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    return sorted({match.decode("utf-8", "replace") for match in LEAKS.findall(raw)})


@pytest.fixture
def pii_upload(callaro_env: Path, tmp_path: Path) -> Path:
    for campaign in ("pii-ok", "pii-blocked", "pii-failed"):  # a high limit: the gates judge, not the share
        (callaro_env.parent / "config" / "campaigns" / f"{campaign}.yaml").write_text(
            f"name: {campaign}\nmax_rejected_share: 0.9\n", encoding="utf-8"
        )
    path = tmp_path / "vendor_list.csv"
    path.write_bytes(CANARY_FILE.encode("utf-8"))
    return path


REAL_SCHEMA = pandera_gate.validated_contacts_schema


def strict_schema() -> object:
    """The real schema plus rules the canary breaks, so Pandera's failure cases hold its name and number."""
    import pandera.polars as pa

    return REAL_SCHEMA().update_columns(
        {
            "first_name": {"checks": [pa.Check.str_length(max_value=3, error="short_first_names")]},
            "phone_e164": {"checks": [pa.Check.str_startswith("+1212", error="new_york_only")]},
        }
    )


@pytest.mark.slow
def test_personal_data_never_reaches_logs_events_or_metadata(
    callaro_env: Path, pii_upload: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1. imported: every stage's metadata (masked previews, counts, audiences)
    assert main(["import", str(pii_upload), "--campaign", "pii-ok", "--json"]) == 0
    imported = json.loads(capfd.readouterr().out)
    assert imported["imported"] == 3 and imported["rejected"] == 2

    # 2. blocked by both gates, with the canary among Pandera's failure cases
    with monkeypatch.context() as patched:
        patched.setattr(pandera_gate, "validated_contacts_schema", strict_schema)
        assert main(["import", str(pii_upload), "--campaign", "pii-blocked", "--expected-count", "999"]) == 1
    blocked_out = capfd.readouterr()

    # 3. a step failing with a DuckDB error that quotes the offending line
    def duckdb_error(*_args: object, **_kwargs: object) -> None:
        raise duckdb.ConversionException(f"Conversion Error: Could not convert string '{CANARY_LINE}' to INT64")

    with monkeypatch.context() as patched:
        patched.setattr(suppression_assets, "scrub", duckdb_error)
        assert main(["import", str(pii_upload), "--campaign", "pii-failed", "--json"]) == 2
    failed = json.loads(capfd.readouterr().out)

    for summary in (imported, failed):
        assert main(["report", summary["upload_id"], "--json"]) == 0
    report_out = capfd.readouterr()

    # every event of every run: messages, metadata, check evaluations, step failures with their error info
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    assert len(runs) == 3
    events = [entry for run in runs for entry in instance.all_logs(run.run_id)]
    kinds = {entry.dagster_event_type for entry in events}
    assert {dg.DagsterEventType.ASSET_CHECK_EVALUATION, dg.DagsterEventType.STEP_FAILURE} <= kinds
    for entry in events:
        assert not leaks(serialize_value(entry)), (entry.dagster_event_type, leaks(serialize_value(entry)))
    failures = [serialize_value(e) for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_FAILURE]
    assert any("ConversionException" in text and "withheld" in text for text in failures)  # the error did happen
    pandera = [
        e.dagster_event.event_specific_data
        for e in events
        if e.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.dagster_event.event_specific_data.check_name == "pandera_validated_contacts"
        and not e.dagster_event.event_specific_data.passed
    ]
    assert pandera and "short_first_names" in pandera[0].description  # it did fail on the canary

    # the instance's files (run and event-log databases, compute logs) and the Data Docs, byte for byte
    scanned = [p for folder in ("dagster", "gx") for p in (callaro_env / folder).rglob("*") if p.is_file()]
    assert any("compute_logs" in str(p) for p in scanned)
    for path in scanned:
        assert not leaks(path.read_bytes()), (path, leaks(path.read_bytes()))

    # what the commands printed
    for output in (json.dumps(imported), json.dumps(failed), *blocked_out, *report_out):
        assert not leaks(output), leaks(output)

    # the canary did go through: it is in the error report and the book, where it belongs
    assert leaks(Path(imported["error_report"]).read_bytes())
    con = open_lake(callaro_env)
    assert con.execute("SELECT count(*) FROM contacts WHERE phone_e164 = '+14158675309'").fetchone() == (1,)
    con.close()


def test_withheld_error_text_keeps_the_code_path_and_drops_the_message() -> None:
    def parse() -> None:
        raise ValueError(f"could not parse {CANARY_LINE!r}")

    try:
        parse()
    except ValueError as error:
        text = withheld_error_text(error, "validated_contacts")
    assert not leaks(text)
    assert text.startswith("validated_contacts failed with builtins.ValueError")
    assert "test_privacy.py" not in text  # only the pipeline's own frames are listed


def test_the_privacy_module_imports_no_dagster() -> None:
    """A pure module: the masking and the failure wording load and run without Dagster."""
    code = (
        "import sys; from callaro_pipeline.core import privacy; "
        "failure = privacy.withheld_failure(ValueError('x'), 'step'); "
        "assert failure is not None and failure.metadata['message_withheld']; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'dagster_shared')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout[:500]


def test_withheld_failure_passes_errors_worded_without_values() -> None:
    from callaro_pipeline.core.errors import ConfigError

    assert withheld_failure(ConfigError("campaign spring: no such file"), "step") is None
    assert withheld_failure(KeyError("x"), "step", worded=(KeyError,)) is None
    full = withheld_failure(OSError(errno.ENOSPC, "No space left on device", "/home/x/warehouse.duckdb"), "step")
    assert full is not None and full.description == "step could not write 'warehouse.duckdb': No space left on device"

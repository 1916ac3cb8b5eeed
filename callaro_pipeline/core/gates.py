"""Blocking quality gates of an upload: Pandera on the validated contacts, Great Expectations on its aggregates.

Both gates report counts and words only: failure cases carry phone numbers and names, so they never leave
this module. Great Expectations sees a one-row summary of the upload, never the rows themselves (a pandas
copy of a large upload costs seconds in GX; the row-level rules are Pandera's job, on polars).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import re
import subprocess
import sys
import threading
import time
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from callaro_pipeline.core import schema
from callaro_pipeline.core.config import check_name
from callaro_pipeline.core.timezones import TIMEZONE_SOURCES

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import pandera.polars as pa

PANDERA_GATE = "pandera_validated_contacts"
GX_GATE = "great_expectations_upload"
GE_GATE = GX_GATE  # the name other modules import
GX_SUITE_NAME = "callaro_upload_gate"

E164_PATTERN = r"^\+[1-9]\d{6,14}$"
CONSENT_VALUES = ("yes", "no", "unknown")
IDENTITY_FIELDS = schema.IDENTITY_FIELDS
# The registry's validated fields without a rule of their own: text (or JSON text) that may be empty.
OPTIONAL_TEXT_COLUMNS = schema.names(
    tuple(
        f
        for f in schema.fields(table="validated_contacts", gated=True, rule=None)
        if f.type in ("text", "json") and f.nullable
    )
)

MetadataValue = float | int | str
# The duplicate key of validated contacts: two rows that differ only by extension are two contacts.
UNIQUE_KEY = schema.CONTACT_KEY
UNIQUE_KEY_LABEL = "_".join(UNIQUE_KEY)


@dataclass
class GateResult:
    name: str
    passed: bool
    detail: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    docs_path: str | None = None


# ---------------------------------------------------------------------------------------------------------
# Pandera: row-level rules on the validated contacts frame
# ---------------------------------------------------------------------------------------------------------


def pandera_rules(pa: Any) -> dict[str, Any]:
    """The Pandera check of each registry rule (schema.Field.rule), by its error name."""
    return {
        "row_number_after_header": pa.Check.ge(2, error="row_number_after_header"),
        "e164_format": pa.Check.str_matches(E164_PATTERN, error="e164_format"),
        "consent_value": pa.Check.isin(CONSENT_VALUES, error="consent_value"),
        "iana_timezone": pa.Check.isin(sorted(zoneinfo.available_timezones()), error="iana_timezone"),
        "timezone_source_value": pa.Check.isin(TIMEZONE_SOURCES, error="timezone_source_value"),
    }


@functools.cache
def validated_contacts_schema() -> pa.DataFrameSchema:
    """The validated_contacts table (without upload_id) as a Pandera schema, generated from the field registry
    (type, nullable, unique, rule of every gated validated field); extra columns are allowed. Unique with the
    extension (the duplicate key): one switchboard number may carry several extensions."""
    import pandera.polars as pa  # imports pandas too: seconds that definition loading need not pay

    rules = pandera_rules(pa)
    columns = {
        f.name: pa.Column(
            schema.polars_dtype(f),
            rules[f.rule] if f.rule else None,
            nullable=f.nullable,
            unique=f.unique,
        )
        for f in schema.fields(table="validated_contacts", gated=True)
    }
    return pa.DataFrameSchema(columns, name="validated_contacts", strict=False, unique=list(UNIQUE_KEY))


def pandera_gate(valid: pl.DataFrame) -> GateResult:
    from pandera.errors import SchemaErrors

    rows = valid.height
    try:
        validated_contacts_schema().validate(valid, lazy=True)
    except SchemaErrors as errors:
        failures = errors.failure_cases
        counts = failure_counts(failures)
        bad_rows = failing_row_count(failures)
        metadata: dict[str, MetadataValue] = {
            "rows_checked": rows,
            "rows_failing": bad_rows,
            "failing_checks": len(counts),
            **{f"failures.{key}": count for key, count in counts.items()},
        }
        return GateResult(PANDERA_GATE, False, pandera_failure_sentence(rows, bad_rows, counts), metadata)
    return GateResult(
        PANDERA_GATE,
        True,
        f"all {rows:,} validated contact{'' if rows == 1 else 's'} match the validated_contacts schema",
        {"rows_checked": rows, "rows_failing": 0, "failing_checks": 0},
    )


def failure_counts(failure_cases: pl.DataFrame) -> dict[str, int]:
    """`column.check` -> number of failure cases; reads only the column and check names, never the cell values."""
    labelled = failure_cases.select(
        pl.when(pl.col("check") == "column_in_dataframe")
        # For a missing column Pandera names the schema as `column` and the missing column as the case.
        .then(pl.col("failure_case").cast(pl.Utf8))
        # the schema-level unique key (phone and extension) is named by its columns, not by the schema
        .when(pl.col("check") == "multiple_fields_uniqueness")
        .then(pl.lit(UNIQUE_KEY_LABEL))
        .otherwise(pl.col("column"))
        .alias("column"),
        pl.col("check"),
    )
    grouped = labelled.group_by("column", "check").len().sort("column", "check")
    return {
        f"{column or 'frame'}.{check_label(check)}": count
        for column, check, count in grouped.select("column", "check", "len").iter_rows()
    }


def check_label(check: str | None) -> str:
    """Pandera's built-in check names look like `dtype('String')`; make them metadata-key friendly."""
    return re.sub(r"[^a-z0-9_]+", "_", str(check).lower()).strip("_") or "unknown"


def failing_row_count(failure_cases: pl.DataFrame) -> int:
    """Distinct rows named by a failure; column-level failures (wrong type, missing column) carry no index."""
    return failure_cases.get_column("index").drop_nulls().n_unique()


def pandera_failure_sentence(rows: int, bad_rows: int, counts: dict[str, int]) -> str:
    checks = ", ".join(f"{key} ({count:,})" for key, count in counts.items())
    if bad_rows:
        return f"{bad_rows:,} of {rows:,} validated contacts break the schema: {checks}"
    return f"the validated contacts frame does not have the expected shape: {checks}"


# ---------------------------------------------------------------------------------------------------------
# Great Expectations: upload-level rules on a one-row summary
# ---------------------------------------------------------------------------------------------------------

# The suite is built once per process and fed per-upload values through suite parameters.
RULE_KEY = "callaro_rule"
_GX_LOCK = threading.Lock()


def great_expectations_gate(
    *,
    upload_id: str,
    rows_read: int,
    rejected: int,
    expected_count: int | None,
    max_rejected_share: float,
    mapped_fields: list[str],
    docs_root: Path,
    drift_unmapped: Sequence[Sequence[str]] = (),
) -> GateResult:
    docs_dir = Path(docs_root) / check_name(upload_id, "upload id")
    summary = upload_summary(rows_read, rejected, mapped_fields)
    parameters = suite_parameters(expected_count, max_rejected_share)
    started = time.perf_counter()
    outcome = _validate_in_side_process(summary, parameters, docs_dir, upload_id)
    if outcome is None:
        outcome = validate_upload_summary(summary, parameters, docs_dir, upload_id)
    inputs = UploadFigures(rows_read, rejected, expected_count, max_rejected_share, len(set(mapped_fields)))
    result = gx_gate_result(outcome, inputs, docs_dir / "index.html")
    result.metadata["gx_seconds"] = round(time.perf_counter() - started, 3)
    if drift_unmapped:  # a recurring file whose drift leaves a field of its last mapping unmapped: blocked
        from callaro_pipeline.core.column_drift import ColumnDrift

        reason = ColumnDrift(unmapped_fields=[(str(f), str(c)) for f, c in drift_unmapped]).blocking_reason()
        result.detail = str(reason) if result.passed else f"{reason}; {result.detail}"
        result.passed = False
        result.metadata["drift_unmapped_fields"] = ",".join(str(f) for f, _ in drift_unmapped)
    return result


def validate_upload_summary(
    summary: dict[str, list[Any]], parameters: dict[str, Any], docs_dir: Path, run_name: str
) -> GxOutcome:
    with _GX_LOCK:
        return gx_runner().validate(summary, parameters, docs_dir, run_name=run_name)


# --- GX in a side process -----------------------------------------------------------------------------------
# Importing GX and building its context is ~5 s of single-threaded Python, paid by every `callaro import` (a new
# process). Started in a second process when the command starts, it is paid on the other core while this one
# imports Dagster and reads the upload. Anything going wrong there falls back to GX in this process.
# Measured 2026-12-02 (`callaro import`, 2 and 100k rows, fresh process): the gate waited 0.3-1.0 s for GX with
# the side process, 6-13 s with GX imported here on first use; `import great_expectations` alone is ~7.3 s.

_side_process: GxSideProcess | None = None


class GxSideProcess:
    """A Python process of its own that imports GX at once, then validates the summaries it is sent (pickled on
    its stdin, answered on its stdout). A fresh interpreter rather than multiprocessing: nothing of the caller's
    main module is run again in it, and none of Dagster's or DuckDB's threads is forked."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
            [sys.executable, "-c", "from callaro_pipeline.core.gates import serve_gx; serve_gx()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # its failures are met again, and reported, by the gate in this process
        )

    def validate(
        self, summary: dict[str, list[Any]], parameters: dict[str, Any], docs_dir: Path, run_name: str
    ) -> GxOutcome | None:
        """The outcome, or None if the side process is gone or failed (the caller then validates here)."""
        requests, answers = self._process.stdin, self._process.stdout
        assert requests is not None and answers is not None  # noqa: S101 - both are pipes (see __init__)
        try:
            pickle.dump((summary, parameters, docs_dir, run_name), requests)
            requests.flush()
            outcome = pickle.load(answers)  # noqa: S301 - our own child's answer
        except (EOFError, OSError, pickle.UnpicklingError):
            return None
        return outcome if isinstance(outcome, GxOutcome) else None

    def close(self) -> None:
        """End of input ends the process once it is idle; one still importing GX is stopped."""
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def serve_gx() -> None:
    """The side process's main loop (see GxSideProcess)."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the answers
    with contextlib.suppress(Exception):
        gx_runner()
    while True:
        try:
            request = pickle.load(sys.stdin.buffer)  # noqa: S301 - sent by the parent process
        except (EOFError, OSError):
            # Every answer is sent and every Data Docs file written: skip the seconds of tearing GX down.
            os._exit(0)
        try:
            outcome: GxOutcome | None = validate_upload_summary(*request)
        except Exception:  # noqa: BLE001 - the parent validates again in its own process and reports the error
            outcome = None
        pickle.dump(outcome, answers)
        answers.flush()


@contextlib.contextmanager
def great_expectations_in_side_process() -> Iterator[None]:
    """Within the block, the GX gate validates in a side process started now (unless GX is already loaded
    here: a long-lived process pays the import once)."""
    global _side_process
    if _side_process is not None or "great_expectations" in sys.modules:
        yield
        return
    _side_process = GxSideProcess()
    try:
        yield
    finally:
        side, _side_process = _side_process, None
        side.close()


def _validate_in_side_process(
    summary: dict[str, list[Any]], parameters: dict[str, Any], docs_dir: Path, run_name: str
) -> GxOutcome | None:
    return None if _side_process is None else _side_process.validate(summary, parameters, docs_dir, run_name)


@dataclass(frozen=True)
class GxOutcome:
    success: bool
    evaluated: int
    rule_success: dict[str, bool]


@dataclass(frozen=True)
class UploadFigures:
    rows_read: int
    rejected: int
    expected_count: int | None
    max_rejected_share: float
    mapped_fields: int

    @property
    def rejected_share(self) -> float:
        return rejected_share(self.rows_read, self.rejected)


def gx_gate_result(outcome: GxOutcome, figures: UploadFigures, docs_index: Path) -> GateResult:
    """A suite can report success with nothing evaluated, so zero expectations is a failure too."""
    failed_rules = [rule for rule, ok in outcome.rule_success.items() if not ok]
    passed = outcome.success and outcome.evaluated > 0 and not failed_rules
    if outcome.evaluated == 0:
        detail = "the Great Expectations suite evaluated no expectations, so the upload cannot be trusted"
    elif passed:
        detail = gx_pass_sentence(figures)
    else:
        detail = "; ".join(gx_failure_phrase(rule, figures) for rule in failed_rules) or "the upload suite failed"
    metadata: dict[str, MetadataValue] = {
        "expectations_evaluated": outcome.evaluated,
        "expectations_failed": len(failed_rules),
        "failed_rules": ",".join(failed_rules),
        "rows_read": figures.rows_read,
        "rejected": figures.rejected,
        "rejected_share": round(figures.rejected_share, 6),
        "max_rejected_share": figures.max_rejected_share,
        "mapped_fields": figures.mapped_fields,
    }
    if figures.expected_count is not None:
        metadata["expected_count"] = figures.expected_count
    return GateResult(GX_GATE, passed, detail, metadata, str(docs_index) if docs_index.is_file() else None)


def rejected_share(rows_read: int, rejected: int) -> float:
    return rejected / rows_read if rows_read > 0 else 0.0


def upload_summary(rows_read: int, rejected: int, mapped_fields: list[str]) -> dict[str, list[Any]]:
    """One row describing the upload; each mapped field becomes a `mapped__<field>` column."""
    identity_mapped = sum(1 for name in IDENTITY_FIELDS if name in mapped_fields)
    return {
        "rows_read": [rows_read],
        "rejected": [rejected],
        "rejected_share": [rejected_share(rows_read, rejected)],
        "identity_fields_mapped": [identity_mapped],
        **{f"mapped__{name}": [True] for name in sorted(set(mapped_fields))},
    }


def suite_parameters(expected_count: int | None, max_rejected_share: float) -> dict[str, Any]:
    """Without an expected count the row-count rule only asks for at least one row."""
    return {
        "rows_read_min": 1 if expected_count is None else expected_count,
        "rows_read_max": expected_count,
        "max_rejected_share": max_rejected_share,
    }


def percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def limit_percent(share: float) -> str:
    return f"{share * 100:g}%"


def gx_pass_sentence(figures: UploadFigures) -> str:
    count = f"{figures.rows_read:,} rows read" + (" as expected" if figures.expected_count is not None else "")
    limit = limit_percent(figures.max_rejected_share)
    return f"{count}, rejected share {percent(figures.rejected_share)} within the campaign limit of {limit}, required fields mapped"


def gx_failure_phrase(rule: str, figures: UploadFigures) -> str:
    if rule == "row_count" and figures.expected_count is not None:
        return f"{figures.rows_read:,} rows read but {figures.expected_count:,} were expected"
    if rule == "row_count":
        return "the upload has no data rows"
    if rule == "rejected_share":
        limit = limit_percent(figures.max_rejected_share)
        return f"rejected share {percent(figures.rejected_share)} exceeds the campaign limit of {limit}"
    if rule.endswith("_mapped") and rule.removesuffix("_mapped") in schema.REQUIRED_FIELDS:
        return f"no column is mapped to the required field {rule.removesuffix('_mapped')}"
    if rule == "identity_mapped":
        return "no column is mapped to any of " + ", ".join(IDENTITY_FIELDS)
    return f"expectation {rule} failed"


def import_great_expectations() -> Any:
    """GX is imported on first use only: the import takes seconds and must stay off definition loading."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations

    return great_expectations


@functools.cache
def gx_runner() -> GxRunner:
    return GxRunner()


class GxRunner:
    """An in-memory GX context with the upload suite and a checkpoint that writes Data Docs, built once."""

    SITE = "callaro_upload_docs"

    def __init__(self) -> None:
        gx = import_great_expectations()
        from great_expectations.checkpoint import UpdateDataDocsAction
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            data_docs_sites={},
        )
        self.context = gx.get_context(project_config=config, mode="ephemeral")
        batch = (
            self.context.data_sources.add_pandas("callaro_uploads")
            .add_dataframe_asset("upload_summary")
            .add_batch_definition_whole_dataframe("one_row_per_upload")
        )
        suite = self.context.suites.add(gx.ExpectationSuite(name=GX_SUITE_NAME))
        for expectation in upload_expectations(gx.expectations):
            suite.add_expectation(expectation)
        validation = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=GX_SUITE_NAME, data=batch, suite=suite)
        )
        self.context.add_data_docs_site(self.SITE, docs_site_config(Path.cwd()))
        self.checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(
                name=GX_SUITE_NAME,
                validation_definitions=[validation],
                actions=[UpdateDataDocsAction(name="upload_data_docs", site_names=[self.SITE])],
            )
        )

    def validate(
        self, summary: dict[str, list[Any]], parameters: dict[str, Any], docs_dir: Path, *, run_name: str
    ) -> GxOutcome:
        import pandas as pd
        from great_expectations.core.run_identifier import RunIdentifier

        docs_dir.mkdir(parents=True, exist_ok=True)
        self.context.update_data_docs_site(self.SITE, docs_site_config(docs_dir))
        result = self.checkpoint.run(
            batch_parameters={"dataframe": pd.DataFrame(summary)},
            expectation_parameters=parameters,
            run_id=RunIdentifier(run_name=run_name),
        )
        rule_success: dict[str, bool] = {}
        evaluated = 0
        for key, validation in result.run_results.items():
            evaluated += int(validation.statistics.get("evaluated_expectations", 0))
            for item in validation.results:
                rule_success[item.expectation_config.meta.get(RULE_KEY, item.expectation_config.type)] = item.success
            # Docs are written; dropping the stored result keeps a long-lived process from growing per upload.
            self.context.validation_results_store.remove_key(key)
        return GxOutcome(success=bool(result.success), evaluated=evaluated, rule_success=rule_success)


def upload_expectations(expectations: Any) -> list[Any]:
    return [
        expectations.ExpectColumnValuesToBeBetween(
            column="rows_read",
            min_value={"$PARAMETER": "rows_read_min"},
            max_value={"$PARAMETER": "rows_read_max"},
            meta={RULE_KEY: "row_count"},
        ),
        expectations.ExpectColumnValuesToBeBetween(
            column="rejected_share",
            min_value=0,
            max_value={"$PARAMETER": "max_rejected_share"},
            meta={RULE_KEY: "rejected_share"},
        ),
        *(
            expectations.ExpectColumnToExist(column=f"mapped__{name}", meta={RULE_KEY: f"{name}_mapped"})
            for name in schema.REQUIRED_FIELDS
        ),
        expectations.ExpectColumnValuesToBeBetween(
            column="identity_fields_mapped", min_value=1, meta={RULE_KEY: "identity_mapped"}
        ),
    ]


def docs_site_config(base_directory: Path) -> dict[str, Any]:
    return {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(base_directory)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "show_how_to_buttons": False},
        "show_how_to_buttons": False,
    }

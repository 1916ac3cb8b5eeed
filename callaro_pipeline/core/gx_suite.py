"""The Great Expectations suite of an upload and the runner (context, suite, data docs) built once per process."""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any

from callaro_pipeline.core import schema
from callaro_pipeline.core.gates import GX_SUITE_NAME, RULE_KEY, GxOutcome

_GX_LOCK = threading.Lock()


def validate_upload_summary(
    summary: dict[str, list[Any]], parameters: dict[str, Any], docs_dir: Path, run_name: str
) -> GxOutcome:
    with _GX_LOCK:
        return gx_runner().validate(summary, parameters, docs_dir, run_name=run_name)


def import_great_expectations() -> Any:
    """GX is imported on first use only: the import takes seconds and must stay off definition loading."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations

    from callaro_pipeline.core.gx_templates import compile_data_docs_templates_once

    compile_data_docs_templates_once()
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

"""Resources configured once for every asset, check, sensor and schedule; the executor of every run."""

import dagster as dg

from callaro_pipeline.defs.segments.assets import dbt_resource
from callaro_pipeline.storage.warehouse import Warehouse


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={"warehouse": Warehouse(), "dbt": dbt_resource()},
        # Runs launched from the UI, a sensor or a schedule run their steps in the run's own process: the default
        # multiprocess executor starts a fresh Python per step (~10 s each here: Dagster, polars, DuckDB imports),
        # while the steps of one upload run one after another anyway (one chain, one writer pool).
        executor=dg.in_process_executor,
    )

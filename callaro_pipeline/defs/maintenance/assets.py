"""Lake maintenance as a Dagster job with a daily schedule (storage/maintenance.py does the work)."""

import dagster as dg

from callaro_pipeline.core.project_paths import config_dir
from callaro_pipeline.defs.partitions import WAREHOUSE_POOL
from callaro_pipeline.storage.maintenance import lake_settings, maintain
from callaro_pipeline.storage.warehouse import Warehouse


@dg.op(
    pool=WAREHOUSE_POOL, description="Merge small files, expire snapshots beyond the retention, delete unused files."
)
def maintain_lake(context: dg.OpExecutionContext, warehouse: Warehouse) -> dg.Output[dict]:
    settings = lake_settings(config_dir())
    with warehouse.connect() as con:
        done = maintain(con, retention_days=settings.snapshot_retention_days)
    context.log.info(f"lake maintenance: {done}")
    return dg.Output(done, metadata={name: dg.MetadataValue.int(value) for name, value in done.items()})


@dg.job(
    description="DuckLake maintenance; time travel reaches back `snapshot_retention_days` (CALLARO_CONFIG/lake.yaml)."
)
def lake_maintenance() -> None:
    maintain_lake()


lake_maintenance_schedule = dg.ScheduleDefinition(
    name="lake_maintenance_daily",
    job=lake_maintenance,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily lake maintenance at 03:30 UTC (runs whenever the Dagster daemon runs).",
)

"""One dynamic partition per upload; its key is the server-made upload id (never a file name, never reused)."""

import dagster as dg

UPLOADS = "uploads"
upload_partitions = dg.DynamicPartitionsDefinition(name=UPLOADS)

# Every DuckDB writer (assets and dbt) runs in this pool, so concurrent runs queue instead of failing on the lock.
WAREHOUSE_POOL = "duckdb"

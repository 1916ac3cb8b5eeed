"""One dynamic partition per upload; its key is the server-made upload id (never a file name, never reused)."""

import dagster as dg

UPLOADS = "uploads"
upload_partitions = dg.DynamicPartitionsDefinition(name=UPLOADS)

# The serial writers run in this pool (limit 1: `concurrency: pools: default_limit` in dagster.yaml): the contact
# book merge, the audience builds, DNC loads, dbt builds and lake maintenance. The per-upload stages (read, map,
# validate, suppress) write only their own upload's rows, each write one short transaction under the warehouse
# lock, so they run in no pool: with `granularity: op` (deploy/dagster.yaml) different uploads' stages run side by
# side while their merges and audience builds take turns.
WAREHOUSE_POOL = "duckdb"

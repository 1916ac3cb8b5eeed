"""Small renderers for Dagster metadata (markdown tables of already-masked frames)."""

from __future__ import annotations

import dagster as dg
import polars as pl


def frame_markdown(df: pl.DataFrame) -> dg.MetadataValue:
    if df.is_empty():
        return dg.MetadataValue.md("_no rows_")
    header = "| " + " | ".join(df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in df.iter_rows()]
    return dg.MetadataValue.md("\n".join([header, rule, *body]))

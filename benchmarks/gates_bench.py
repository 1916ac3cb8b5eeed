"""Time the two gates: Pandera on a 1M-row validated-contacts frame, Great Expectations cold and warm.

Run from the project root: `uv run python benchmarks/gates_bench.py [--rows N]`. Run it in a fresh process:
the "cold" figure includes importing Great Expectations, which is most of it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from callaro_pipeline.core.gates import OPTIONAL_TEXT_COLUMNS
from callaro_pipeline.core.gx_gate import great_expectations_gate
from callaro_pipeline.core.gx_suite import import_great_expectations
from callaro_pipeline.core.pandera_gate import pandera_gate, validated_contacts_schema

ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", None]
SOURCES = ["phone", "provided", "state", "postal_code", "ambiguous"]


def contacts_frame(rows: int) -> pl.DataFrame:
    """Distinct North American numbers with a realistic spread of zones, sources and consent values."""
    index = pl.int_range(0, rows, dtype=pl.Int64)
    return pl.select(
        row_number=index + 2,
        phone_e164=pl.format("+1{}", index + 2_012_000_000),
        **{name: pl.lit(None, dtype=pl.Utf8) for name in OPTIONAL_TEXT_COLUMNS},
        consent=pl.lit("unknown"),
        timezone=pl.Series(ZONES).gather(index % len(ZONES)),
        timezone_candidates=pl.lit(None, dtype=pl.List(pl.Utf8)),
        timezone_source=pl.Series(SOURCES).gather(index % len(SOURCES)),
    ).with_columns(first_name=pl.format("Name{}", pl.col("row_number")))


def with_broken_rows(frame: pl.DataFrame, every: int) -> pl.DataFrame:
    broken = pl.col("row_number") % every == 0
    return frame.with_columns(
        phone_e164=pl.when(broken).then(pl.lit("5550134")).otherwise(pl.col("phone_e164")),
        timezone=pl.when(broken).then(pl.lit("Mars/Base")).otherwise(pl.col("timezone")),
    )


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def bench_pandera(rows: int) -> None:
    frame = contacts_frame(rows)
    schema_seconds, _ = timed(validated_contacts_schema)
    print(f"pandera import + schema build: {schema_seconds:.2f} s")
    first, _ = timed(pandera_gate, frame)
    runs = [timed(pandera_gate, frame) for _ in range(3)]
    assert all(result.passed for _, result in runs), runs[0][1].detail
    print(f"pandera_gate, {rows:,} valid rows: first {first:.3f} s, then median {median(runs):.3f} s")

    broken = with_broken_rows(frame, every=100)
    seconds, result = timed(pandera_gate, broken)
    assert not result.passed
    print(f"pandera_gate, {rows:,} rows with 1% broken: {seconds:.3f} s ({result.metadata['rows_failing']:,} failing)")


def bench_great_expectations(rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="callaro-gx-bench-") as docs:
        docs_root = Path(docs)
        arguments = {
            "rows_read": rows,
            "rejected": rows // 20,
            "expected_count": rows,
            "max_rejected_share": 0.10,
            "mapped_fields": ["phone", "first_name", "email"],
            "docs_root": docs_root,
        }
        already_imported = "great_expectations" in sys.modules
        import_seconds, _ = timed(import_great_expectations)
        first, result = timed(great_expectations_gate, upload_id="bench-cold", **arguments)
        assert result.passed and result.metadata["expectations_evaluated"] > 0, result.detail
        runs = [timed(great_expectations_gate, upload_id=f"bench-warm-{i}", **arguments) for i in range(5)]
        note = " (already imported: not a cold figure)" if already_imported else ""
        print(f"great_expectations import: {import_seconds:.2f} s{note}")
        print(f"great_expectations_gate first call (context + suite + docs): {first:.3f} s")
        print(f"great_expectations_gate warm: median {median(runs):.3f} s, max {max(s for s, _ in runs):.3f} s")
        print(f"  expectations evaluated: {result.metadata['expectations_evaluated']}, docs: {result.docs_path}")


def median(runs: list) -> float:
    return statistics.median(seconds for seconds, _ in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    bench_pandera(rows)
    bench_great_expectations(rows)


if __name__ == "__main__":
    main()

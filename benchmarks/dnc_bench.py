"""Time a national DNC import and a scrub against it, in a throwaway CALLARO_HOME.

Run from the project root: `uv run python benchmarks/dnc_bench.py --numbers 10000000 --contacts 1000000`.
The national file is seeded random NANP numbers, one bare 10-digit number per line; a tenth of the contacts
are drawn from it, so the scrub must find (about) that many.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
from run import lake_bytes

from callaro_pipeline.core.config import Campaign
from callaro_pipeline.storage.dnc_loads import import_dnc_file
from callaro_pipeline.storage.suppression import dnc_problems, scrub
from callaro_pipeline.storage.warehouse import Warehouse, stage

LISTED_SHARE = 0.10


def nanp_numbers(rng: np.random.Generator, count: int) -> np.ndarray:
    """10-digit numbers with a valid area code and exchange (both 200-999)."""
    area = rng.integers(200, 1000, count, dtype=np.int64)
    exchange = rng.integers(200, 1000, count, dtype=np.int64)
    line = rng.integers(0, 10_000, count, dtype=np.int64)
    return area * 10_000_000 + exchange * 10_000 + line


def write_national_file(path: Path, numbers: np.ndarray) -> None:
    pl.DataFrame({"n": numbers}).write_csv(path, include_header=False)


def contacts_frame(rng: np.random.Generator, listed: np.ndarray, count: int) -> pl.DataFrame:
    from_list = rng.choice(listed, int(count * LISTED_SHARE), replace=False)
    others = nanp_numbers(rng, count - from_list.size)
    numbers = np.concatenate([from_list, others])
    rng.shuffle(numbers)
    return pl.DataFrame({"n": numbers}).select(
        pl.format("+1{}", pl.col("n")).alias("phone_e164"),
        pl.lit("yes").alias("consent"),
        pl.lit("2026-01-01").alias("consent_date"),
        pl.lit("web form").alias("consent_source"),
    )


def timed(label: str, action, per: int | None = None, unit: str = ""):
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    rate = f"  ({per / seconds:,.0f} {unit}/s)" if per else ""
    print(f"{label:<44} {seconds:8.2f} s{rate}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=10_000_000)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20260301)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="callaro-dnc-bench-") as tmp:
        warehouse = Warehouse(home=str(Path(tmp) / "home"))
        national = Path(tmp) / "national_full.txt"
        numbers = nanp_numbers(rng, args.numbers)
        timed(f"write national file ({args.numbers:,} lines)", lambda: write_national_file(national, numbers))
        print(f"{'  file size':<44} {national.stat().st_size / 1e6:8.1f} MB")
        with warehouse.connect() as con:
            # Registering the first frame imports pyarrow's dataset module (seconds, once per process).
            stage(con, "warm_up", pl.DataFrame({"number": [0]}))
            loaded = timed(
                "import_dnc_file (national, full)",
                lambda: import_dnc_file(con, national, source="national", snapshot_date=date.today()),
                per=args.numbers,
                unit="numbers",
            )
            print(f"{'  distinct numbers loaded / rejected':<44} {loaded.rows_loaded:,} / {loaded.rows_rejected:,}")
            contacts = contacts_frame(rng, numbers, args.contacts)
            campaign = Campaign(name="bench", require_national_dnc=True)
            problems = timed(
                "dnc_problems",
                lambda: dnc_problems(con, sources=campaign.dnc_sources, require_national=True, now=datetime.now(UTC)),
            )
            assert problems == [], problems
            scrubbed = timed(
                f"scrub ({args.contacts:,} contacts)",
                lambda: scrub(con, contacts, campaign=campaign),
                args.contacts,
                "contacts",
            )
            suppressed = scrubbed.filter(pl.col("reasons").list.len() > 0).height
            print(f"{'  suppressed (expected ~' + f'{LISTED_SHARE:.0%})':<44} {suppressed:,}")
        size = lake_bytes(warehouse.paths.home)
        print(f"{'lake size (catalog + data files)':<44} {size / 1e6:8.1f} MB")


if __name__ == "__main__":
    main()

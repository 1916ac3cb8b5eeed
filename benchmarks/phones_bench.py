"""Phone normalization: a naive per-row phonenumbers loop against `normalize_phones`.

    uv run python benchmarks/phones_bench.py --rows 1000000 [--repeat 3] [--no-naive]

Prints both timings, rows/s, the ratio and the agreement (E.164, extension, type, region, time zones, error);
with --repeat, the best of that many `normalize_phones` runs (figures move on a shared machine); --no-naive
times `normalize_phones` alone.
`generate_phone_values(n, seed)` makes realistic upload values and is meant to be imported by other benchmarks.
"""

from __future__ import annotations

import argparse
import random
import time

import phonenumbers
import polars as pl

from callaro_pipeline.core.phones import PHONE_COLUMNS, PHONE_SCHEMA, normalize_one, normalize_phones
from callaro_pipeline.core.timezone_references import read_reference

US_SHAPES = (
    "({a}) {e}-{l}",
    "{a}.{e}.{l}",
    "{a}-{e}-{l}",
    "{a} {e} {l}",
    "{a}{e}{l}",
    "+1 {a} {e} {l}",
    "+1{a}{e}{l}",
    "+1 ({a}) {e}-{l}",
    "1-{a}-{e}-{l}",
    "1 ({a}) {e}-{l}",
    "1{a}{e}{l}",
)
EXTENSIONS = (" x{n}", " ext. {n}", " ext {n}", "x{n}", ";ext={n}", " extension {n}", ", ext: {n}", " #{n}")
NON_GEOGRAPHIC_AREA_CODES = ("800", "888", "877", "866", "855", "844", "833", "500", "900")
COMPARED = ["phone_e164", "phone_extension", "phone_type", "phone_region", "phone_timezones"]
NAIVE_SCHEMA = {name: PHONE_SCHEMA[name] for name in COMPARED} | {"failure": pl.Utf8}
JUNK = ("", " ", "n/a", "N/A", "none", "call me", "12345", "555-1234", "000-000-0000", "+", "tbd", "1-800-FLOWERS")


def _area_codes() -> list[str]:
    prefixes = read_reference("nanp_prefix_states.csv")["prefix"]
    return sorted({p for p in prefixes if len(p) == 3}) + ["876", "787", "809", "242", "441", "340", "671"]


def _international_pool(rng: random.Random, size: int) -> list[str]:
    regions = sorted(phonenumbers.SUPPORTED_REGIONS - set(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]))
    kinds = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
    pool = []
    while len(pool) < size:
        example = phonenumbers.example_number_for_type(rng.choice(regions), rng.choice(kinds))
        if example is None:
            continue
        digits = str(example.national_number)
        keep = max(len(digits) - 3, 1)
        example.national_number = int(digits[:keep] + "".join(rng.choice("0123456789") for _ in digits[keep:]))
        style = rng.choice((phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164))
        pool.append(phonenumbers.format_number(example, style))
    return pool


def generate_phone_values(n: int, seed: int) -> list[str | None]:
    """Seeded upload-like phone cells: North American numbers in the usual shapes (some with extensions,
    invalid area codes or exchanges, fictional 555-01xx lines, toll-free, Canada and the Caribbean), ~10%
    international, spreadsheet damage ("4155550134.0", "4.15556E+09"), blanks and junk."""
    rng = random.Random(seed)
    area_codes = _area_codes()
    international = _international_pool(rng, 5000)
    values: list[str | None] = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.10:
            values.append(rng.choice(international))
            continue
        if roll < 0.12:
            values.append(rng.choice(JUNK))
            continue
        if roll < 0.125:
            values.append(None)
            continue
        area = rng.choice(NON_GEOGRAPHIC_AREA_CODES) if rng.random() < 0.05 else rng.choice(area_codes)
        if rng.random() < 0.02:
            area = f"{rng.choice('01')}{rng.randrange(100):02d}"
        exchange = "555" if rng.random() < 0.02 else f"{rng.randrange(100, 1000)}"
        line = f"01{rng.randrange(100):02d}" if exchange == "555" else f"{rng.randrange(10000):04d}"
        if roll < 0.135:
            digits = f"{area}{exchange}{line}"
            values.append(f"{digits}.0" if rng.random() < 0.6 else f"{digits[0]}.{digits[1:6]}E+09")
            continue
        value = rng.choice(US_SHAPES).format(a=area, e=exchange, l=line)
        if rng.random() < 0.05:
            value += rng.choice(EXTENSIONS).format(n=rng.randrange(1, 100000))
        values.append(value)
    return values


def naive(values: list[str | None], region: str) -> pl.DataFrame:
    """What a per-row loop gives: phonenumbers parse, is_valid, format, type, region, time zones per value."""
    rows = [normalize_one(value, region) for value in values]
    return pl.DataFrame(rows, schema=NAIVE_SCHEMA)


def disagreements(values: list[str | None], expected: pl.DataFrame, actual: pl.DataFrame) -> pl.DataFrame:
    """Rows where `normalize_phones` (actual) and the naive loop (expected) differ on anything compared."""
    expected_error = (
        pl.when(pl.col("failure") == "missing")
        .then(pl.lit("missing_required"))
        .when(pl.col("failure").is_not_null())
        .then(pl.lit("invalid_phone"))
        .alias("phone_error")
    )
    columns = COMPARED + ["phone_error"]
    both = pl.concat(
        [
            expected.select(*COMPARED, expected_error),
            actual.select(pl.col(c).alias(f"{c}_actual") for c in columns),
            pl.DataFrame({"value": values}, schema={"value": pl.Utf8}),
        ],
        how="horizontal",
    )
    return both.filter(pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_actual")) for c in columns))


def timed(function, *args) -> tuple[object, float, float]:
    """Result, wall seconds and CPU seconds (all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--region", default="US")
    parser.add_argument("--repeat", type=int, default=1, help="runs of normalize_phones; the best is reported")
    parser.add_argument("--no-naive", action="store_true", help="skip the per-row loop and the agreement")
    args = parser.parse_args()

    values = generate_phone_values(args.rows, args.seed)
    series = pl.Series("phone", values, dtype=pl.Utf8)

    normalize_phones(series.head(100), args.region)  # loads the reference tables once
    runs = [timed(normalize_phones, series, args.region) for _ in range(max(args.repeat, 1))]
    actual, fast_wall, fast_cpu = min(runs, key=lambda run: run[1])
    assert actual.columns == PHONE_COLUMNS and actual.height == args.rows
    print(f"rows:              {args.rows:,} ({series.n_unique():,} distinct)")
    walls = ", ".join(f"{run[1]:.2f}" for run in runs)
    print(f"normalize_phones:  {fast_wall:8.2f} s wall {fast_cpu:8.2f} s CPU {args.rows / fast_wall:>12,.0f} rows/s")
    print(f"                   runs (wall s): {walls}")
    if args.no_naive:
        return
    expected, naive_wall, naive_cpu = timed(naive, values, args.region)

    mismatches = disagreements(values, expected, actual)
    agreement = 1 - mismatches.height / args.rows
    print(f"naive per-row:     {naive_wall:8.2f} s wall {naive_cpu:8.2f} s CPU {args.rows / naive_wall:>12,.0f} rows/s")
    print(f"ratio:             {naive_wall / fast_wall:8.1f}x wall {naive_cpu / fast_cpu:6.1f}x CPU")
    print(f"agreement:         {agreement:.6%} ({mismatches.height} rows differ)")
    if mismatches.height:
        print(mismatches.head(10))


if __name__ == "__main__":
    main()

"""Seeded generator of realistic contact uploads at any size (vectorized with numpy/polars).

US numbers in every common format (some with extensions), 5-15% international, junk, in-file duplicates,
every time-zone form (IANA, abbreviations, offsets, blank), states, ZIPs, consent and custom fields.

    uv run python benchmarks/generate.py --rows 1000000 --out /tmp/upload_1m.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

AREA_CODES = {  # area code -> state (a spread over every US time zone)
    "212": "NY",
    "305": "FL",
    "312": "IL",
    "415": "CA",
    "602": "AZ",
    "713": "TX",
    "907": "AK",
    "808": "HI",
    "303": "CO",
    "206": "WA",
    "404": "GA",
    "617": "MA",
    "405": "OK",
    "915": "TX",
    "502": "KY",
    "317": "IN",
}
US_FORMATS = [
    "({a}) {e}-{l}",
    "{a}-{e}-{l}",
    "{a}.{e}.{l}",
    "+1 {a} {e} {l}",
    "1{a}{e}{l}",
    "{a}{e}{l}",
    "+1-{a}-{e}-{l}",
]
INTERNATIONAL = ["+44 20 7946 0{n3}", "+49 30 901820{n2}", "+33 1 42 68 5{n3}", "+61 2 9374 4{n3}", "+52 55 5128 1{n3}"]
TIMEZONES = [
    "",
    "",
    "America/New_York",
    "EST",
    "Pacific",
    "CST",
    "UTC-05:00",
    "GMT+1",
    "Mountain",
    "America/Chicago",
    "PT",
]
JUNK = ["n/a", "call me", "000", "4.15556E+09", "", "12345", "(555) 555-5555"]
FIRST = ["Ava", "Liam", "Mia", "Noah", "Emma", "Lucas", "Sofia", "Ethan", "Olivia", "Mason", "Zoe", "Leo"]
LAST = ["Nguyen", "Patel", "Garcia", "Smith", "Johnson", "Brown", "Miller", "Lopez", "Müller", "Dubois"]


def generate_upload(
    rows: int,
    seed: int = 42,
    international_share: float = 0.10,
    junk_share: float = 0.02,
    duplicate_share: float = 0.03,
    first_id: int = 0,
) -> pl.DataFrame:
    """`rows` rows; customer ids run from `first_id`: give later uploads into the same campaign other ids, or
    every row of theirs is a duplicate (by external_id) of the first upload."""
    rng = np.random.default_rng(seed)
    areas = np.array(list(AREA_CODES))
    area = areas[rng.integers(0, len(areas), rows)]
    exchange = rng.integers(200, 1000, rows)
    exchange = np.where(np.isin(exchange, [555, 911, 411, 611, 811, 211, 311, 950, 958, 959, 976]), 234, exchange)
    line = rng.integers(0, 10000, rows)
    fmt = rng.integers(0, len(US_FORMATS), rows)
    frame = pl.DataFrame({"a": area, "e": exchange.astype(str), "l": [f"{x:04d}" for x in line], "f": fmt})
    us = pl.concat_str(
        [
            pl.when(pl.col("f") == i).then(
                pl.format(f.replace("{a}", "{}").replace("{e}", "{}").replace("{l}", "{}"), "a", "e", "l")
            )
            for i, f in enumerate(US_FORMATS)
        ],
        ignore_nulls=True,
    )
    phones = frame.select(us.alias("phone")).get_column("phone")
    with_ext = rng.random(rows) < 0.03
    phones = pl.Series(np.where(with_ext, phones.to_numpy().astype(object) + " ext. 12", phones.to_numpy()))
    kind = rng.random(rows)
    intl = np.array([t.replace("{n3}", "{:03d}").replace("{n2}", "{:02d}") for t in INTERNATIONAL])
    intl_values = [
        intl[i % len(intl)].format(int(n) % (100 if "{:02d}" in intl[i % len(intl)] else 1000))
        for i, n in enumerate(rng.integers(0, 1000, rows))
    ]
    junk_values = np.array(JUNK)[rng.integers(0, len(JUNK), rows)]
    phone = np.where(kind < international_share, np.array(intl_values, dtype=object), phones.to_numpy())
    phone = np.where(kind > 1 - junk_share, junk_values, phone)
    dup = rng.random(rows) < duplicate_share
    source_index = rng.integers(0, max(rows, 1), rows)
    phone = np.where(dup, phone[source_index], phone)
    return pl.DataFrame(
        {
            "Customer ID": [f"C{n:08d}" for n in range(first_id, first_id + rows)],
            "First Name": np.array(FIRST)[rng.integers(0, len(FIRST), rows)],
            "Last Name": np.array(LAST)[rng.integers(0, len(LAST), rows)],
            "Phone Number": phone.astype(str),
            "E-mail": [f"user{n}@example.com" if n % 50 else "broken@@example" for n in range(rows)],
            "Time Zone": np.array(TIMEZONES)[rng.integers(0, len(TIMEZONES), rows)],
            "State": np.array([AREA_CODES[a] for a in areas])[rng.integers(0, len(areas), rows)],
            "Zip": [f"{z:05d}" for z in rng.integers(1000, 99999, rows)],
            "Lead Source": np.array(["webinar", "referral", "website", "trade_show"])[rng.integers(0, 4, rows)],
            "Consent": np.array(["yes", "no", ""])[rng.integers(0, 3, rows)],
            "Plan Tier": np.array(["starter", "growth", "enterprise"])[rng.integers(0, 3, rows)],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    generate_upload(args.rows, args.seed).write_csv(args.out)
    print(f"wrote {args.rows} rows to {args.out}")


if __name__ == "__main__":
    main()

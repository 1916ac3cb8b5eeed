"""Build callaro_pipeline/core/reference/nanp_prefix_states.csv: NANP national-number prefix -> US state or province.

    uv run python tools/build_nanp_prefix_states.py

From phonenumbers' English geocoder data (importing it takes seconds, which is why the table is committed
rather than computed at run time); `phones.normalize_phones` reads the file for `phone_state`. The test
`test_phones.py::test_committed_state_table_matches_the_installed_geocoder` checks the committed file against
this function after a phonenumbers upgrade.
"""

from __future__ import annotations

import csv
from pathlib import Path

import phonenumbers
import polars as pl

from callaro_pipeline.core.timezone_references import read_reference

OUT = Path(__file__).resolve().parents[1] / "callaro_pipeline" / "core" / "reference" / "nanp_prefix_states.csv"
# Geocoder spellings that differ from the state table's names.
GEOCODER_STATE_NAMES = {"BRITISH COLOMBIA": "BC", "WASHINGTON D.C.": "DC", "WASHINGTON STATE": "WA"}


def geocoder_state_rows() -> list[tuple[str, str | None]]:
    """(national prefix, state) from phonenumbers' English geocoder data.

    The geocoder names a place for an area code ("California") or an exchange ("San Francisco, CA"). Only
    entries that change the state given by their nearest shorter prefix are kept, so the file stays small.
    """
    from phonenumbers.geodata import GEOCODE_DATA

    states = read_reference("state_timezones.csv").filter(pl.col("country").is_in(["US", "CA"]))
    names = dict(zip(states["name"].str.to_uppercase(), states["state"], strict=True)) | GEOCODER_STATE_NAMES
    codes = set(states["state"])
    found = {}
    for key, descriptions in GEOCODE_DATA.items():
        if key.startswith("1") and "en" in descriptions and len(key) > 1:
            place = descriptions["en"]
            suffix = place.rsplit(", ", 1)[-1] if ", " in place else None
            found[key[1:]] = suffix if suffix in codes else names.get(place.upper())
    rows = []
    for prefix in sorted(found, key=lambda p: (len(p), p)):
        parents = [prefix[:end] for end in range(len(prefix) - 1, 0, -1) if prefix[:end] in found]
        if not parents or found[parents[0]] != found[prefix]:
            rows.append((prefix, found[prefix]))
    return rows


def main() -> None:
    header = (
        "# NANP national-number prefix (area code, or area code + leading exchange digits) -> US state or\n"
        "# Canadian province; the longest matching prefix wins and an empty state means none (e.g. an area code\n"
        "# shared by several provinces). Generated from phonenumbers' English geocoder data by\n"
        f"# `uv run python tools/build_nanp_prefix_states.py` (phonenumbers {phonenumbers.__version__}).\n"
    )
    with OUT.open("w", encoding="utf-8", newline="") as out:
        out.write(header)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["prefix", "state"])
        writer.writerows((prefix, state or "") for prefix, state in geocoder_state_rows())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

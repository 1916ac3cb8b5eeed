"""The reference tables of time zone evidence (in `reference/`): area codes and exchanges, 5-digit ZIPs, states and
provinces, Canadian postal areas."""

from __future__ import annotations

import zoneinfo
from functools import cache
from pathlib import Path

import polars as pl

from callaro_pipeline.core import places

REFERENCE_DIR = Path(__file__).parent / "reference"
_NANP_E164_DIGITS = r"^\+(1[2-9]\d{2}[2-9]\d{6})$"


def read_reference(name: str) -> pl.DataFrame:
    return pl.read_csv(REFERENCE_DIR / name, comment_prefix="#", infer_schema=False)


@cache
def iana_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@cache
def npa_zone_table() -> dict[str, str]:
    """NANP area code -> ";"-joined zones: phonenumbers' union over the area code, then the corrections."""
    from phonenumbers.tzdata import TIMEZONE_DATA

    unions: dict[str, set[str]] = {}
    for prefix, zones in TIMEZONE_DATA.items():
        if prefix.startswith("1") and len(prefix) >= 4:
            unions.setdefault(prefix[1:4], set()).update(zone for zone in zones if zone in iana_zone_names())
    table = {npa: ";".join(sorted(zones)) for npa, zones in unions.items() if zones}
    for row in read_reference("area_code_timezones.csv").iter_rows(named=True):
        table[row["area_code"]] = row["zones"]
    return table


@cache
def corrected_area_codes() -> dict[str, str]:
    return dict(read_reference("area_code_timezones.csv").select("area_code", "zones").iter_rows())


@cache
def _exchange_table() -> dict[str, str]:
    """NANP prefixes longer than the area code ("1812385", "181242") -> ";"-joined zones (phonenumbers)."""
    from phonenumbers.tzdata import TIMEZONE_DATA

    return {
        prefix: ";".join(sorted(zone for zone in zones if zone in iana_zone_names()))
        for prefix, zones in TIMEZONE_DATA.items()
        if prefix.startswith("1") and len(prefix) > 4
    }


def exchange_zones(e164: pl.Expr) -> pl.Expr:
    """The zones of the longest exchange-level prefix phonenumbers has for a NANP number, else null."""
    table = _exchange_table()
    digits = e164.str.extract(_NANP_E164_DIGITS, 1)
    lengths = sorted({len(prefix) for prefix in table}, reverse=True)
    return pl.coalesce(
        digits.str.slice(0, length).replace_strict(table, default=None, return_dtype=pl.Utf8) for length in lengths
    ).replace("", None)


@cache
def zip5_zone_table() -> pl.DataFrame:
    return read_reference("zip5_timezones.csv").select(zip5=pl.col("zip5").cast(pl.Int32), zones="zones")


@cache
def state_zone_table() -> dict[str, str]:
    """State / province -> its zones: state_timezones.csv united with the centroid zones of the state's ZIPs."""
    table = {
        state: set(zones.split(";"))
        for state, zones in read_reference("state_timezones.csv").select("state", "zones").iter_rows()
    }
    zips = zip5_zone_table()
    zips = zips.with_columns(state=places.postal_state(zips["zip5"].cast(pl.Utf8).str.zfill(5)))
    for state, zones in (
        zips.drop_nulls("state").group_by("state").agg(pl.col("zones").str.split(";").list.first().unique()).iter_rows()
    ):
        table.setdefault(state, set()).update(zones)
    return {state: ";".join(sorted(zones)) for state, zones in table.items()}


@cache
def fsa_zone_table() -> dict[str, str]:
    return dict(read_reference("ca_postal_timezones.csv").select("letter", "zones").iter_rows())

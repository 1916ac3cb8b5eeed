"""Contact time zones: explicit text first, else inferred from the phone number, the state, the postal code.

Every rule works on the distinct combinations of its inputs and is joined back, so the cost follows the
number of distinct (timezone, phone zones, state, postal code, country) tuples, not the number of rows.
The lookup tables are data files under `reference/`, each documented at its top.
"""

from __future__ import annotations

import zoneinfo
from functools import cache
from pathlib import Path

import polars as pl

TIMEZONE_SOURCES = ("provided", "phone", "state", "postal_code", "ambiguous", "unknown")
INVALID_TIMEZONE_MESSAGE = "not a recognised time zone name, abbreviation or UTC offset"
REFERENCE_DIR = Path(__file__).parent / "reference"
RESOLVE_INPUTS: dict[str, pl.DataType | type[pl.DataType]] = {
    "timezone": pl.Utf8,
    "phone_timezones": pl.List(pl.Utf8),
    "state": pl.Utf8,
    "postal_code": pl.Utf8,
    "country": pl.Utf8,
    "phone_region": pl.Utf8,
}
_ZONE_LIST = pl.List(pl.Utf8)
_US_NAMES = ["US", "USA", "U.S.", "U.S.A.", "UNITED STATES", "UNITED STATES OF AMERICA", "AMERICA"]
_CA_NAMES = ["CA", "CAN", "CANADA"]
_US_PHONE_REGIONS = ["US", "PR", "VI", "GU", "MP", "AS"]
# "UTC-05:00", "GMT+2", "-0500", "UTC+5:30" after the text key is built (lowercase, unicode minus replaced).
_OFFSET_PATTERN = r"^(?:utc|gmt)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$"


def read_reference(name: str) -> pl.DataFrame:
    return pl.read_csv(REFERENCE_DIR / name, comment_prefix="#", infer_schema=False)


@cache
def _alias_table() -> pl.DataFrame:
    aliases = read_reference("timezone_aliases.csv").rename({"alias": "key", "zone": "alias_zone"})
    iana = pl.DataFrame(
        {"key": [name.lower() for name in sorted(zoneinfo.available_timezones())]},
    ).with_columns(iana_zone=pl.Series(sorted(zoneinfo.available_timezones())))
    return aliases.join(iana, on="key", how="full", coalesce=True)


@cache
def _state_table() -> pl.DataFrame:
    """State code and full name (upper case) -> zones."""
    states = read_reference("state_timezones.csv").with_columns(pl.col("zones").str.split(";"))
    by_code = states.select(state_key=pl.col("state"), state_zones="zones")
    by_name = states.select(state_key=pl.col("name").str.to_uppercase(), state_zones="zones")
    return pl.concat([by_code, by_name])


@cache
def _postal_table() -> pl.DataFrame:
    """Postal key ("US:941", "CA:V") -> zones."""
    zip3 = read_reference("zip3_timezones.csv").with_columns(pl.col("zones").str.split(";"))
    us = zip3.select(
        postal_key=pl.int_ranges(pl.col("zip3_from").cast(pl.Int32), pl.col("zip3_to").cast(pl.Int32) + 1),
        postal_zones="zones",
    ).explode("postal_key")
    us = us.with_columns(postal_key=pl.lit("US:") + pl.col("postal_key").cast(pl.Utf8).str.zfill(3))
    canada = read_reference("ca_postal_timezones.csv").select(
        postal_key=pl.lit("CA:") + pl.col("letter"), postal_zones=pl.col("zones").str.split(";")
    )
    return pl.concat([us, canada])


def _timezone_key(text: pl.Expr) -> pl.Expr:
    return (
        text.str.to_lowercase()
        .str.replace_all("\u2212", "-")
        .str.replace_all(r"\(us\s*(?:&|and)\s*canada\)", " ")
        .str.replace_all(r"\b(?:standard|daylight|time|zone)\b", " ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def _offset_zone(key: pl.Expr) -> pl.Expr:
    """Whole-hour offsets -> Etc/GMT zones, whose sign is inverted by POSIX convention (UTC-05:00 -> Etc/GMT+5)."""
    sign = key.str.extract(_OFFSET_PATTERN, 1)
    hours = key.str.extract(_OFFSET_PATTERN, 2).cast(pl.Int32)
    minutes = key.str.extract(_OFFSET_PATTERN, 3).cast(pl.Int32).fill_null(0)
    inverted = pl.when(sign == "-").then(pl.lit("+")).otherwise(pl.lit("-"))
    in_range = pl.when(sign == "-").then(hours <= 12).otherwise(hours <= 14)
    return (
        pl.when(hours.is_null() | (minutes != 0) | ~in_range)
        .then(None)
        .when(hours == 0)
        .then(pl.lit("UTC"))
        .otherwise(pl.lit("Etc/GMT") + inverted + hours.cast(pl.Utf8))
    )


def _canonical_offset(key: pl.Expr) -> pl.Expr:
    """ "UTC+5:30" -> "+05:30": the alias-table key of a non-whole-hour offset."""
    return pl.concat_str(
        key.str.extract(_OFFSET_PATTERN, 1),
        key.str.extract(_OFFSET_PATTERN, 2).str.zfill(2),
        pl.lit(":"),
        key.str.extract(_OFFSET_PATTERN, 3),
    )


def parse_timezone_text(values: pl.Series) -> pl.DataFrame:
    """Explicit time zone text -> tz_candidates (one IANA zone, or empty), tz_error, tz_error_message."""
    text = values.cast(pl.Utf8).rename("text").to_frame()
    distinct = text.unique().with_columns(key=_timezone_key(pl.col("text")))
    aliases = _alias_table()
    parsed = (
        distinct.join(aliases, on="key", how="left")
        .join(
            aliases.select(offset_key="key", offset_alias="alias_zone"),
            left_on=_canonical_offset(pl.col("key")),
            right_on="offset_key",
            how="left",
        )
        .with_columns(zone=pl.coalesce("alias_zone", "iana_zone", _offset_zone(pl.col("key")), "offset_alias"))
        .select(
            "text",
            tz_candidates=pl.when(pl.col("zone").is_null())
            .then(pl.lit([], dtype=_ZONE_LIST))
            .otherwise(pl.concat_list("zone")),
            tz_error=pl.when(pl.col("zone").is_null() & (pl.col("key") != ""))
            .then(pl.lit("invalid_timezone"))
            .otherwise(None),
        )
        .with_columns(tz_error_message=pl.when(pl.col("tz_error").is_not_null()).then(pl.lit(INVALID_TIMEZONE_MESSAGE)))
    )
    return text.join(parsed, on="text", how="left", nulls_equal=True, maintain_order="left").drop("text")


def _country_group(country: pl.Expr, phone_region: pl.Expr) -> pl.Expr:
    """ "US", "CA", "other" (a country that disables US/Canadian state and postal rules) or null (unknown).

    Without a country, the phone number's region stands in, so that e.g. an Australian number's "WA" is not
    read as Washington.
    """
    upper = country.str.strip_chars().str.to_uppercase()
    return (
        pl.when(upper.is_in(_US_NAMES))
        .then(pl.lit("US"))
        .when(upper.is_in(_CA_NAMES))
        .then(pl.lit("CA"))
        .when(upper.is_not_null() & (upper != ""))
        .then(pl.lit("other"))
        .when(phone_region.is_in(_US_PHONE_REGIONS))
        .then(pl.lit("US"))
        .when(phone_region == "CA")
        .then(pl.lit("CA"))
        .when(phone_region.is_not_null())
        .then(pl.lit("other"))
    )


def _postal_key(postal_code: pl.Expr, country_group: pl.Expr) -> pl.Expr:
    code = postal_code.str.strip_chars().str.to_uppercase()
    zip3 = code.str.extract(r"^(\d{3})\d{2}(?:-?\d{4})?$", 1)
    fsa_letter = code.str.extract(r"^([A-Z])\d[A-Z] ?\d[A-Z]\d$", 1)
    return (
        pl.when(zip3.is_not_null() & (country_group.is_null() | (country_group == "US")))
        .then(pl.lit("US:") + zip3)
        .when(fsa_letter.is_not_null() & (country_group.is_null() | (country_group == "CA")))
        .then(pl.lit("CA:") + fsa_letter)
    )


def _narrow(candidates: pl.Expr, evidence: pl.Expr) -> pl.Expr:
    """Intersect with new evidence; evidence that is missing or contradicts the earlier set is ignored."""
    both = candidates.list.set_intersection(evidence).list.sort()
    return (
        pl.when(evidence.list.len() == 0)
        .then(candidates)
        .when(candidates.list.len() == 0)
        .then(evidence)
        .when(both.list.len() == 0)
        .then(candidates)
        .otherwise(both)
    )


def _typed_inputs(df: pl.DataFrame) -> pl.DataFrame:
    """The input columns with their expected types; missing ones are null."""
    return df.select(
        (pl.col(name) if name in df.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in RESOLVE_INPUTS.items()
    )


def _resolve_distinct(keys: pl.DataFrame) -> pl.DataFrame:
    provided = parse_timezone_text(keys["timezone"])
    country = _country_group(pl.col("country"), pl.col("phone_region"))
    state_key = pl.when(country == "other").then(None).otherwise(pl.col("state").str.strip_chars().str.to_uppercase())
    no_zones = pl.lit([], dtype=_ZONE_LIST)
    phone = pl.col("phone_timezones").fill_null(no_zones).list.unique().list.sort()
    after_state = _narrow(pl.col("phone_zones"), pl.col("state_zones"))
    after_postal = _narrow(pl.col("after_state"), pl.col("postal_zones"))
    return (
        pl.concat([keys, provided], how="horizontal")
        .with_columns(phone_zones=phone, state_key=state_key, postal_key=_postal_key(pl.col("postal_code"), country))
        .join(_state_table(), on="state_key", how="left")
        .join(_postal_table(), on="postal_key", how="left")
        .with_columns(pl.col("state_zones", "postal_zones").fill_null(no_zones).list.sort())
        .with_columns(after_state=after_state)
        .with_columns(after_postal=after_postal)
        .with_columns(
            resolved_timezone_source=pl.when(pl.col("tz_candidates").list.len() == 1)
            .then(pl.lit("provided"))
            .when(pl.col("phone_zones").list.len() == 1)
            .then(pl.lit("phone"))
            .when(pl.col("after_state").list.len() == 1)
            .then(pl.lit("state"))
            .when(pl.col("after_postal").list.len() == 1)
            .then(pl.lit("postal_code"))
            .when(pl.col("after_postal").list.len() > 1)
            .then(pl.lit("ambiguous"))
            .otherwise(pl.lit("unknown")),
            resolved_timezone_candidates=pl.when(pl.col("tz_candidates").list.len() == 1)
            .then(pl.col("tz_candidates"))
            .otherwise(pl.col("after_postal")),
        )
        .with_columns(
            resolved_timezone=pl.when(pl.col("resolved_timezone_candidates").list.len() == 1).then(
                pl.col("resolved_timezone_candidates").list.first()
            ),
            resolved_timezone_error=pl.col("tz_error"),
            resolved_timezone_error_message=pl.col("tz_error_message"),
        )
    )


def resolve_timezones(df: pl.DataFrame) -> pl.DataFrame:
    """Add timezone (IANA or null), timezone_candidates, timezone_source, timezone_error(_message).

    Explicit text wins ("provided"). Text that cannot be read is flagged `invalid_timezone` and the zone is
    still inferred, so the caller decides whether the error rejects the row. Inference: the phone number's
    zones if exactly one; else narrowed by the state, then by the postal code; several left -> "ambiguous"
    with all of them as candidates; none -> "unknown".

    The rules run once per distinct key and are joined back. The key holds only what the answer depends on:
    the text, the phone's zones, the state as the rules read it, and the postal key (ZIP3 / FSA letter) only
    where the postal rule can still change the answer (no single provided zone and not exactly one zone left
    after the state rule). On a file with varied postal codes that is a few thousand keys instead of a key per
    row; each key is resolved from its first row, exactly as before.
    """
    outputs = ["timezone", "timezone_candidates", "timezone_source", "timezone_error", "timezone_error_message"]
    country = _country_group(pl.col("country"), pl.col("phone_region"))
    rows = _typed_inputs(df).with_columns(
        # phonenumbers lists a number's zones in a fixed order: the same zones in another order only make a
        # finer key, never a wrong one
        _zone_key=pl.col("phone_timezones").list.join(";"),
        _state_key=pl.when(country == "other")
        .then(None)
        .otherwise(pl.col("state").str.strip_chars().str.to_uppercase()),
    )
    state_keys = ["timezone", "_zone_key", "_state_key"]
    by_state = _resolve_distinct(rows.unique(subset=state_keys, keep="first")).select(
        *state_keys,
        _postal_matters=(pl.col("tz_candidates").list.len() != 1) & (pl.col("after_state").list.len() != 1),
    )
    rows = rows.join(by_state, on=state_keys, how="left", nulls_equal=True, maintain_order="left").with_row_index(
        "_row"
    )
    postal = rows.filter(pl.col("_postal_matters")).select(
        "_row", _postal_key=_postal_key(pl.col("postal_code"), country)
    )
    rows = rows.join(postal, on="_row", how="left", maintain_order="left")
    keys = [*state_keys, "_postal_key"]
    resolved = _resolve_distinct(rows.unique(subset=keys, keep="first")).select(
        *keys, *(f"resolved_{name}" for name in outputs)
    )
    joined = rows.select(keys).join(resolved, on=keys, how="left", nulls_equal=True, maintain_order="left")
    return df.with_columns(joined.select(pl.col(f"resolved_{name}").alias(name) for name in outputs))

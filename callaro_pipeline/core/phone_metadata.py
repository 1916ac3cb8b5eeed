"""North American national numbers answered from phonenumbers' own metadata, in polars.

For a +1 number with a 10-digit national number, phonenumbers' answer (validity, type, region, time zones) is a
function of which metadata regexes the national number matches and of the longest time-zone key that prefixes
it. `nanp_answers` evaluates the same regexes, in the order phonenumbers tries them
(`region_code_for_number`: each +1 region's leading digits, or its number types for a region without;
`number_type`: general description, then premium rate, toll free, ... fixed line and mobile), with polars'
`str.contains`, i.e. the Rust regex engine. The metadata patterns use literals, classes, groups, alternation and
counted repeats only, which both engines read the same way; a pattern polars cannot compile fails loudly, and
`test_phones.py` compares the answers with plain phonenumbers on every example number and random numbers.

Time zones and states are keyed on national-number prefixes of at most six digits (time-zone keys are at most
"1" + six digits), looked up through a dense array of the 10**6 six-digit prefixes (`dense_index`).
"""

from __future__ import annotations

from functools import cache

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata
from phonenumbers.tzdata import TIMEZONE_DATA

PREFIX_DIGITS = 6
NATIONAL_DIGITS = 10
TYPE_NAMES = {
    value: name.lower() for name, value in vars(phonenumbers.PhoneNumberType).items() if isinstance(value, int)
}
# Zones phonenumbers lists separately that the IANA database makes links of one zone (same clock since 1970):
# without this every UK mobile number would be "ambiguous" between London and the Crown Dependencies.
SAME_CLOCK_ZONES = {
    "Europe/Guernsey": "Europe/London",
    "Europe/Isle_of_Man": "Europe/London",
    "Europe/Jersey": "Europe/London",
}
_UNKNOWN = phonenumbers.PhoneNumberType.UNKNOWN
_TYPE = phonenumbers.PhoneNumberType
# phonenumbers' `_number_type_helper` order, after the general description and before fixed line / mobile.
_SPECIAL_TYPES = (
    ("premium_rate", _TYPE.PREMIUM_RATE),
    ("toll_free", _TYPE.TOLL_FREE),
    ("shared_cost", _TYPE.SHARED_COST),
    ("voip", _TYPE.VOIP),
    ("personal_number", _TYPE.PERSONAL_NUMBER),
    ("pager", _TYPE.PAGER),
    ("uan", _TYPE.UAN),
    ("voicemail", _TYPE.VOICEMAIL),
)
_UNKNOWN_ZONES = ("Etc/Unknown",)
ANSWER_SCHEMA = {
    "phone_type": pl.Utf8,
    "phone_region": pl.Utf8,
    "phone_timezones": pl.List(pl.Utf8),
    "failure": pl.Utf8,
}


def known_zones(zones: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(SAME_CLOCK_ZONES.get(zone, zone) for zone in zones if zone != "Etc/Unknown"))


def _matches(description, national: pl.Expr) -> pl.Expr | None:
    """phonenumbers' `_is_number_matching_desc` for a 10-digit national number (None: never matches)."""
    if description is None or not description.national_number_pattern:
        return None
    if description.possible_length and NATIONAL_DIGITS not in description.possible_length:
        return None
    return national.str.contains(f"^(?:{description.national_number_pattern})$")


def _number_type(metadata: PhoneMetadata, national: pl.Expr) -> pl.Expr:
    """phonenumbers' `_number_type_helper` as one expression (a PhoneNumberType value)."""
    general = _matches(metadata.general_desc, national)
    if general is None:
        return pl.lit(_UNKNOWN)
    chain = pl.when(~general).then(pl.lit(_UNKNOWN))
    for name, number_type in _SPECIAL_TYPES:
        matched = _matches(getattr(metadata, name), national)
        if matched is not None:
            chain = chain.when(matched).then(pl.lit(number_type))
    fixed, mobile = _matches(metadata.fixed_line, national), _matches(metadata.mobile, national)
    same = metadata.same_mobile_and_fixed_line_pattern
    if fixed is not None and (same or mobile is None):
        chain = chain.when(fixed).then(pl.lit(_TYPE.FIXED_LINE_OR_MOBILE if same else _TYPE.FIXED_LINE))
    elif fixed is not None and mobile is not None:
        chain = chain.when(fixed & mobile).then(pl.lit(_TYPE.FIXED_LINE_OR_MOBILE))
        chain = chain.when(fixed).then(pl.lit(_TYPE.FIXED_LINE))
    if not same and mobile is not None:
        chain = chain.when(mobile).then(pl.lit(_TYPE.MOBILE))
    return chain.otherwise(pl.lit(_UNKNOWN))


def _types_and_regions(numbers: pl.DataFrame) -> pl.DataFrame:
    """`numbers` (a `national` column of 10 digits) with `type` and `region` as phonenumbers gives them, the
    region as its position in the +1 regions (their count: no region matches), in another row order.

    Regions are tried in phonenumbers' order; each is asked only about the numbers no earlier region took."""
    national = pl.col("national")
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]
    remaining, parts = numbers, []
    for position, region in enumerate(regions):
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None:  # as phonenumbers: a region without metadata takes nothing
            continue
        if metadata.leading_digits is not None:
            flagged = remaining.with_columns(taken=national.str.contains(f"^(?:{metadata.leading_digits})"))
            taken = flagged.filter("taken").drop("taken").with_columns(type=_number_type(metadata, national))
            remaining = flagged.filter(~pl.col("taken")).drop("taken")
        else:
            typed = remaining.with_columns(type=_number_type(metadata, national))
            taken = typed.filter(pl.col("type") != _UNKNOWN)
            remaining = typed.filter(pl.col("type") == _UNKNOWN).drop("type")
        parts.append(taken.with_columns(region=pl.lit(position, dtype=pl.Int64)))
    parts.append(remaining.with_columns(type=pl.lit(_UNKNOWN), region=pl.lit(len(regions), dtype=pl.Int64)))
    return pl.concat(parts, how="vertical_relaxed")


def dense_index(prefixes: pl.Series) -> pl.Series:
    """For each of the 10**6 six-digit prefixes, the position in `prefixes` (0 to 6 digits each) of the
    longest one that covers it, or null."""
    width = pl.lit(10, dtype=pl.Int64).pow(PREFIX_DIGITS - pl.col("prefix").str.len_chars())
    first = pl.col("prefix").str.pad_end(1, "0").cast(pl.Int64) * width
    ranges = (
        prefixes.rename("prefix")
        .to_frame()
        .with_row_index("position")
        .with_columns(depth=pl.col("prefix").str.len_chars(), six=pl.int_ranges(first, first + width))
    )
    index = pl.Series("position", [None] * 10**PREFIX_DIGITS, dtype=pl.UInt32)
    for _, same_depth in ranges.sort("depth").group_by("depth", maintain_order=True):
        covered = same_depth.select("position", "six").explode("six")
        index = index.scatter(covered["six"], covered["position"])
    return index


@cache
def _zone_table() -> tuple[pl.Series, list[list[str]]]:
    """(dense index of the +1 time-zone keys, their zones): phonenumbers' longest-prefix lookup."""
    keys = sorted(key[1:] for key in TIMEZONE_DATA if key.startswith("1"))
    if any(len(key) > PREFIX_DIGITS for key in keys):  # a future metadata release with longer keys
        raise ValueError("phonenumbers' +1 time-zone keys are longer than the six-digit lookup")
    return dense_index(pl.Series(keys, dtype=pl.Utf8)), [known_zones(TIMEZONE_DATA["1" + key]) for key in keys]


def nanp_answers(nationals: pl.Series) -> tuple[pl.Series, pl.DataFrame]:
    """phonenumbers' answers for +1 and each value of `nationals` (a 10-digit national number starting 2-9, or
    null): per value the position of its answer (null for null), and the table of the few distinct answers
    (ANSWER_SCHEMA), so that a million rows gather their answers once instead of carrying lists of zones."""
    regions = list(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])
    zone_index, zone_lists = _zone_table()
    unknown_zone, country_zone, no_zone = len(zone_lists), len(zone_lists) + 1, len(zone_lists) + 2
    zone_lists = [*zone_lists, known_zones(_UNKNOWN_ZONES), known_zones(TIMEZONE_DATA.get("1", _UNKNOWN_ZONES)), []]
    types = max(TYPE_NAMES) + 1  # type values run up to UNKNOWN (99)
    geographical = [t for t in TYPE_NAMES if phonenumbers.is_number_type_geographical(t, 1) and t != _UNKNOWN]

    numbers = nationals.rename("national").to_frame().with_row_index("row").drop_nulls("national")
    if numbers.is_empty():  # nothing to ask: no regex compiled
        return pl.Series("answer", [None] * nationals.len(), dtype=pl.UInt32), pl.DataFrame(schema=ANSWER_SCHEMA)
    typed = _types_and_regions(numbers)
    prefix_zone = zone_index.gather(typed["national"].cast(pl.Int64) // 10 ** (NATIONAL_DIGITS - PREFIX_DIGITS))
    valid = pl.col("type") != _UNKNOWN
    zone = (
        pl.when(~valid)
        .then(no_zone)
        .when(pl.col("type").is_in(geographical))
        .then(pl.col("prefix_zone").fill_null(unknown_zone))
        .otherwise(country_zone)
    )
    region = pl.when(valid).then(pl.col("region")).otherwise(len(regions))
    # region, type and time-zone key in one number
    keys = typed.with_columns(prefix_zone.alias("prefix_zone")).select(
        "row", key=(region * types + pl.col("type")) * len(zone_lists) + zone.cast(pl.Int64)
    )
    distinct = keys["key"].unique().sort()
    positions = pl.Series("answer", [None] * nationals.len(), dtype=pl.UInt32).scatter(
        keys["row"], distinct.search_sorted(keys["key"]).cast(pl.UInt32)
    )
    rows = []
    for key in distinct:
        region_type, zone_position = divmod(key, len(zone_lists))
        region_position, number_type = divmod(region_type, types)
        valid_answer = number_type != _UNKNOWN
        rows.append(
            {
                "phone_type": TYPE_NAMES[number_type] if valid_answer else None,
                "phone_region": regions[region_position] if valid_answer else None,
                "phone_timezones": zone_lists[zone_position],
                "failure": None if valid_answer else "invalid",
            }
        )
    return positions, pl.DataFrame(rows, schema=ANSWER_SCHEMA)

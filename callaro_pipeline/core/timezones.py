"""Contact time zones decided from all the evidence, compared by wall clock.

Evidence: the phone (area code; phonenumbers' zones corrected by `reference/area_code_timezones.csv`), the
address state / province (any spelling, `places.normalize_state`), the 5-digit ZIP (`zip5_timezones.csv`) or
Canadian postal code (`ca_postal_timezones.csv`), and a zone typed in the file (IANA name, Windows name,
abbreviation or UTC offset). Each piece of evidence is a set of zones. Two zones are the same when their UTC
offsets agree at every instant over 2026-01-01..2028-12-31 (`same_clock`): America/Detroit is New York,
America/North_Dakota/Center is Chicago, America/Denver is neither.

The address says where the person lives, so every zone of it stays plausible: the ZIP or postal code (the
state too when the ZIP lies in another state), else the state. The phone (area code and exchange) and a typed
zone say where the person may be, or was:
- no address: the phone's zones, narrowed by a typed zone that shares a clock with them;
- the phone adds all its zones: a number is often not where its owner lives, and an area code or exchange that
  spans a zone line may be from either side (a 364 number with a Paducah ZIP: Eastern and Central), so only a
  phone whose zones the address already has (a Sioux Falls exchange with a Sioux Falls ZIP) adds nothing;
- a typed zone that shares a clock with the address adds nothing ("MST" with a Phoenix ZIP is Phoenix); one
  that shares none adds all its zones;
- evidence that shares no clock with the address (a person who moved, a mobile from elsewhere, a typed zone
  contradicting the address) makes the contact a "conflict": it is only callable when the window is open in
  all of its candidates;
- no evidence (or only unreadable typed text): no candidates, never callable ("unknown" / "invalid").
The phone's zones are the exchange's where phonenumbers knows the exchange (prefixes longer than the area
code), else the union over the area code, and the corrections file replaces both for the area codes it lists.

Every rule works on distinct values and is joined back; the combination runs once per distinct tuple of
evidence sets, so the cost follows the number of distinct evidence combinations, not the number of rows.
"""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from datetime import datetime
from functools import cache
from pathlib import Path

import polars as pl

from callaro_pipeline.core import places
from callaro_pipeline.core.lists import distinct_sorted

# provided / phone / state / postal_code: that evidence alone decided one zone (the others agree or are absent);
# combined: several pieces of evidence, none alone, narrowed to one zone; ambiguous: the evidence agrees on
# several zones; conflict: the evidence disagrees, every plausible zone kept; invalid: only unreadable typed
# text; unknown: no evidence at all.
TIMEZONE_SOURCES = (
    "provided",
    "phone",
    "state",
    "postal_code",
    "combined",
    "ambiguous",
    "conflict",
    "invalid",
    "unknown",
)
INVALID_TIMEZONE_MESSAGE = "not a recognised time zone name, abbreviation or UTC offset"
REFERENCE_DIR = Path(__file__).parent / "reference"
RESOLVE_INPUTS: dict[str, pl.DataType | type[pl.DataType]] = {
    "timezone": pl.Utf8,
    "phone_timezones": pl.List(pl.Utf8),
    "phone_e164": pl.Utf8,
    "state": pl.Utf8,
    "postal_code": pl.Utf8,
    "country": pl.Utf8,
    "phone_region": pl.Utf8,
}
CLOCK_SPAN = (datetime(2026, 1, 1), datetime(2029, 1, 1))
# The name used for a clock when the evidence itself names none of its zones (offset readings).
PREFERRED_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Adak",
    "America/Halifax",
    "America/Puerto_Rico",
    "America/St_Johns",
    "America/Regina",
    "America/Atikokan",
    "Pacific/Guam",
    "Pacific/Pago_Pago",
)
_ZONE_LIST = pl.List(pl.Utf8)
_OFFSET_PATTERN = re.compile(r"^(?:utc|gmt)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$")
_EVIDENCE = ("provided", "postal_code", "phone", "state")  # order of the names given to the candidates
_NANP_E164 = r"^\+1([2-9]\d{2})[2-9]\d{6}$"
_NANP_E164_DIGITS = r"^\+(1[2-9]\d{2}[2-9]\d{6})$"


def read_reference(name: str) -> pl.DataFrame:
    return pl.read_csv(REFERENCE_DIR / name, comment_prefix="#", infer_schema=False)


# --- clocks ------------------------------------------------------------------------------------------------

_CLOCK_IDS: dict[bytes, int] = {}


@cache
def _instants() -> pl.Series:
    start, end = CLOCK_SPAN
    return pl.datetime_range(start, end, "30m", time_zone="UTC", eager=True, closed="left")


@cache
def zone_clock(zone: str) -> tuple[int, frozenset[int], frozenset[int]]:
    """(clock id, standard offsets, daylight offsets) of an IANA zone over CLOCK_SPAN, offsets in minutes.

    Equal clock ids mean the same UTC offset at every half hour of the span (every transition in North
    America falls on one).
    """
    local = _instants().dt.convert_time_zone(zone)
    base = local.dt.base_utc_offset().dt.total_minutes()
    daylight = local.dt.dst_offset().dt.total_minutes()
    total = base + daylight
    digest = hashlib.sha1(total.to_numpy().tobytes()).digest()
    clock = _CLOCK_IDS.setdefault(digest, len(_CLOCK_IDS))
    return clock, frozenset(base.unique().to_list()), frozenset(total.filter(daylight != 0).unique().to_list())


def same_clock(first: str, second: str) -> bool:
    """True when the two zones keep the same wall clock over 2026-2028."""
    return zone_clock(first)[0] == zone_clock(second)[0]


def clock_classes(zones: list[str]) -> list[list[str]]:
    """The zones grouped by wall clock, in first-seen order."""
    groups: dict[int, list[str]] = {}
    for zone in zones:
        groups.setdefault(zone_clock(zone)[0], []).append(zone)
    return list(groups.values())


def _zones_in(name: str, column: str = "zones") -> set[str]:
    frame = read_reference(name)
    return {zone for value in frame[column].drop_nulls() for zone in value.split(";") if zone}


@cache
def north_american_zones() -> tuple[str, ...]:
    """Every zone the reference data can give a US / Canadian contact: the universe of offset readings."""
    zones = _zones_in("state_timezones.csv") | _zones_in("ca_postal_timezones.csv")
    zones |= _zones_in("area_code_timezones.csv")
    zones |= {zone for value in _zip5_table()["zones"].unique().to_list() for zone in value.split(";")}
    return tuple(sorted(zone for zone in zones if zone in _iana_names()))


@cache
def _world_zones() -> tuple[str, ...]:
    return tuple(
        sorted(
            zone
            for zone in _iana_names()
            if "/" in zone and not zone.startswith(("Etc/", "posix/", "right/", "SystemV/", "US/", "Canada/"))
        )
    )


@cache
def _iana_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _representative(zones: list[str]) -> str:
    for zone in PREFERRED_ZONES:
        if zone in zones:
            return zone
    return min(zones)


@cache
def offset_zones(minutes: int, kind: str) -> tuple[str, ...]:
    """The DST-aware zones with that UTC offset ("standard", "daylight" or "either"), one name per clock.

    North American zones first; only when none has the offset, all IANA zones. Never an Etc/GMT zone.
    """
    for universe in (north_american_zones(), _world_zones()):
        matching = []
        for zone in universe:
            _, standard, daylight = zone_clock(zone)
            if (kind in ("standard", "either") and minutes in standard) or (
                kind in ("daylight", "either") and minutes in daylight
            ):
                matching.append(zone)
        if matching:
            return tuple(sorted((_representative(group) for group in clock_classes(matching)), key=_zone_order))
    return ()


def _zone_order(zone: str) -> tuple[int, str]:
    return (PREFERRED_ZONES.index(zone) if zone in PREFERRED_ZONES else len(PREFERRED_ZONES), zone)


# --- typed zone text ---------------------------------------------------------------------------------------


def _text_key(text: str) -> str:
    key = text.lower().replace("\u2212", "-").strip()
    key = re.sub(r"\(us\s*(?:&|and)\s*canada\)", " ", key)
    key = re.sub(r"\b(?:standard|daylight|time|zone)\b", " ", key)
    key = re.sub(r"\s+", " ", key).strip()
    if re.fullmatch(r"[a-z. ]+", key) and "." in key:
        key = re.sub(r"[. ]", "", key)
    return key


@cache
def _alias_readings() -> dict[str, tuple[str, ...] | tuple[int, str]]:
    readings: dict[str, tuple] = {}
    # Windows names (CLDR windowsZones via tzlocal), keyed like typed text: "US Mountain Standard Time" ->
    # "us mountain" -> America/Phoenix. The alias file wins where both define a key.
    try:
        from tzlocal.windows_tz import win_tz
    except ImportError:  # pragma: no cover - tzlocal is a dependency
        win_tz = {}
    for name, zone in win_tz.items():
        reading = _zone_reading(zone)
        if reading:
            readings[_text_key(name)] = reading
    for row in read_reference("timezone_aliases.csv").iter_rows(named=True):
        if row["zones"]:
            readings[row["alias"]] = tuple(row["zones"].split(";"))
        else:
            readings[row["alias"]] = (_offset_minutes(row["offset"]), row["offset_kind"])
    return readings


def _offset_minutes(text: str) -> int | None:
    match = _OFFSET_PATTERN.match(text)
    if not match:
        return None
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if minutes >= 60 or (sign == "-" and hours > 12) or (sign == "+" and hours > 14):
        return None
    return (-1 if sign == "-" else 1) * (hours * 60 + minutes)


def _zone_reading(zone: str) -> tuple | None:
    """An IANA zone as a reading; a fixed-offset Etc zone becomes an offset reading (its DST-aware zones)."""
    if zone not in _iana_names():
        return None
    if zone.startswith("Etc/") or zone in ("UTC", "GMT", "UCT", "Zulu", "Universal", "Greenwich"):
        (offset,) = zone_clock(zone)[1]
        return (offset, "either")
    return (zone,)


@cache
def _iana_by_key() -> dict[str, str]:
    return {name.lower(): name for name in _iana_names()}


@cache
def read_timezone_text(text: str | None) -> tuple[str, ...] | None:
    """The zones a typed zone text stands for (several for an abbreviation or offset), () for empty text,
    None for text that cannot be read."""
    if text is None:
        return ()
    key = _text_key(text)
    if not key:
        return ()
    reading = _alias_readings().get(key)
    if reading is None:
        iana = _iana_by_key().get(key.replace(" ", "_")) or _iana_by_key().get(text.strip().lower())
        reading = _zone_reading(iana) if iana else None
    if reading is None:
        minutes = _offset_minutes(key)
        reading = (minutes, "either") if minutes is not None else None
    if reading is None:
        return None
    if isinstance(reading[0], int):
        zones = offset_zones(*reading)
        return zones or None
    return tuple(str(zone) for zone in reading)


def parse_timezone_text(values: pl.Series) -> pl.DataFrame:
    """Typed time zone text -> tz_candidates (its zones, several for an abbreviation or offset, or empty),
    tz_error ("invalid_timezone" for text that cannot be read), tz_error_message."""
    text = values.cast(pl.Utf8).rename("text").to_frame()
    distinct = text.unique()["text"].to_list()
    readings = [read_timezone_text(value) for value in distinct]
    parsed = pl.DataFrame(
        {
            "text": distinct,
            "tz_candidates": [list(reading or ()) for reading in readings],
            "tz_error": ["invalid_timezone" if reading is None else None for reading in readings],
        },
        schema={"text": pl.Utf8, "tz_candidates": _ZONE_LIST, "tz_error": pl.Utf8},
    ).with_columns(tz_error_message=pl.when(pl.col("tz_error").is_not_null()).then(pl.lit(INVALID_TIMEZONE_MESSAGE)))
    return text.join(parsed, on="text", how="left", nulls_equal=True, maintain_order="left").drop("text")


# --- evidence tables ---------------------------------------------------------------------------------------


@cache
def _npa_zone_table() -> dict[str, str]:
    """NANP area code -> ";"-joined zones: phonenumbers' union over the area code, then the corrections."""
    from phonenumbers.tzdata import TIMEZONE_DATA

    unions: dict[str, set[str]] = {}
    for prefix, zones in TIMEZONE_DATA.items():
        if prefix.startswith("1") and len(prefix) >= 4:
            unions.setdefault(prefix[1:4], set()).update(zone for zone in zones if zone in _iana_names())
    table = {npa: ";".join(sorted(zones)) for npa, zones in unions.items() if zones}
    for row in read_reference("area_code_timezones.csv").iter_rows(named=True):
        table[row["area_code"]] = row["zones"]
    return table


@cache
def _corrected_area_codes() -> dict[str, str]:
    return dict(read_reference("area_code_timezones.csv").select("area_code", "zones").iter_rows())


@cache
def _exchange_table() -> dict[str, str]:
    """NANP prefixes longer than the area code ("1812385", "181242") -> ";"-joined zones (phonenumbers)."""
    from phonenumbers.tzdata import TIMEZONE_DATA

    return {
        prefix: ";".join(sorted(zone for zone in zones if zone in _iana_names()))
        for prefix, zones in TIMEZONE_DATA.items()
        if prefix.startswith("1") and len(prefix) > 4
    }


def _exchange_zones(e164: pl.Expr) -> pl.Expr:
    """The zones of the longest exchange-level prefix phonenumbers has for a NANP number, else null."""
    table = _exchange_table()
    digits = e164.str.extract(_NANP_E164_DIGITS, 1)
    lengths = sorted({len(prefix) for prefix in table}, reverse=True)
    return pl.coalesce(
        digits.str.slice(0, length).replace_strict(table, default=None, return_dtype=pl.Utf8) for length in lengths
    ).replace("", None)


@cache
def _zip5_table() -> pl.DataFrame:
    return read_reference("zip5_timezones.csv").select(zip5=pl.col("zip5").cast(pl.Int32), zones="zones")


@cache
def _state_zone_table() -> dict[str, str]:
    """State / province -> its zones: state_timezones.csv united with the centroid zones of the state's ZIPs."""
    table = {
        state: set(zones.split(";"))
        for state, zones in read_reference("state_timezones.csv").select("state", "zones").iter_rows()
    }
    zips = _zip5_table()
    zips = zips.with_columns(state=places.postal_state(zips["zip5"].cast(pl.Utf8).str.zfill(5)))
    for state, zones in (
        zips.drop_nulls("state").group_by("state").agg(pl.col("zones").str.split(";").list.first().unique()).iter_rows()
    ):
        table.setdefault(state, set()).update(zones)
    return {state: ";".join(sorted(zones)) for state, zones in table.items()}


@cache
def _fsa_zone_table() -> dict[str, str]:
    return dict(read_reference("ca_postal_timezones.csv").select("letter", "zones").iter_rows())


def _typed_inputs(df: pl.DataFrame) -> pl.DataFrame:
    """The input columns with their expected types; missing ones are null."""
    return df.select(
        (pl.col(name) if name in df.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in RESOLVE_INPUTS.items()
    )


def _evidence(df: pl.DataFrame) -> pl.DataFrame:
    """One ";"-joined zone string per evidence (null = none) and the typed text's error."""
    rows = _typed_inputs(df)
    # a stated country restricts the address evidence; without one, only a non-North-American phone does
    # (an Australian number's "WA" is not Washington), never a US/Canadian one (people cross the border)
    stand_in = pl.when(
        pl.col("phone_region").is_not_null() & ~pl.col("phone_region").is_in([*places.US_PHONE_REGIONS, "CA"])
    )
    group = pl.coalesce(places.country_group(pl.col("country")), stand_in.then(pl.lit("other")))
    code = pl.col("postal_code").str.strip_chars().str.to_uppercase()
    north_american = group.is_null() | group.is_in(["US", "CA"])  # as places.postal_state reads them
    npa = pl.col("phone_e164").str.extract(_NANP_E164, 1)
    rows = rows.with_columns(
        _group=group,
        _npa=npa,
        _zip5=pl.when(north_american).then(code.str.extract(places.ZIP_PATTERN, 1).cast(pl.Int32)),
        _fsa=pl.when(north_american).then(code.str.extract(places.FSA_PATTERN, 1)),
    )
    state_codes = places.normalize_state(rows["state"], rows["_group"])
    npa_table = _npa_zone_table()
    fsa_table = _fsa_zone_table()
    typed = parse_timezone_text(rows["timezone"])
    rows = rows.with_columns(
        _state_code=state_codes,
        _fsa_letter=pl.col("_fsa").str.slice(0, 1),
    ).join(_zip5_table().rename({"zip5": "_zip5", "zones": "_zip_zones"}), on="_zip5", how="left")
    phone_list = distinct_sorted(pl.col("phone_timezones")).list.join(";")
    return pl.DataFrame(
        {
            "provided": typed["tz_candidates"].list.join(";").replace("", None),
            "tz_error": typed["tz_error"],
            "tz_error_message": typed["tz_error_message"],
        }
    ).with_columns(
        rows.select(
            phone=pl.coalesce(
                pl.col("_npa").replace_strict(_corrected_area_codes(), default=None),
                _exchange_zones(pl.col("phone_e164")),
                pl.col("_npa").replace_strict(npa_table, default=None),
                # outside the NANP, the country's zones; a NANP code without a place (toll-free 8XX, 5XX, 900)
                # tells nothing, whatever phonenumbers lists for the whole country
                pl.when(pl.col("_npa").is_null()).then(phone_list.replace("", None)),
            ),
            state=pl.col("_state_code").replace_strict(_state_zone_table(), default=None),
            postal_code=pl.coalesce(
                pl.col("_zip_zones"),
                pl.when(pl.col("_fsa").is_in(["X0A", "X0B", "X0C"]))
                .then(pl.lit(_state_zone_table().get("NU")))
                .otherwise(pl.col("_fsa_letter").replace_strict(fsa_table, default=None)),
            ),
        )
    )


def _combine(evidence: dict[str, str | None], invalid: bool) -> tuple[list[str], str]:
    """(candidate zones, timezone_source) of one combination of evidence sets (see the module doc)."""
    sets: dict[str, dict[int, str]] = {}
    for kind in _EVIDENCE:
        value = evidence.get(kind)
        if value:
            by_clock: dict[int, str] = {}
            for zone in value.split(";"):
                by_clock.setdefault(zone_clock(zone)[0], zone)
            sets[kind] = by_clock
    if not sets:
        return [], "invalid" if invalid else "unknown"
    clocks = {kind: set(by_clock) for kind, by_clock in sets.items()}
    address = clocks.get("postal_code") or clocks.get("state")
    conflict = "postal_code" in clocks and "state" in clocks and not clocks["postal_code"] & clocks["state"]
    if conflict:
        address = clocks["postal_code"] | clocks["state"]
    if address:
        chosen = set(address)
        for kind in ("phone", "provided"):
            if kind not in clocks:
                continue
            if not clocks[kind] & address:
                conflict = True
            if kind == "phone" or conflict:
                chosen |= clocks[kind]
    else:
        chosen = clocks.get("phone") or clocks["provided"]
        typed = clocks.get("provided", chosen)
        if typed & chosen:
            chosen = typed & chosen
        else:
            chosen = chosen | typed
            conflict = True
    names = sorted(
        (next(by_clock[clock] for by_clock in sets.values() if clock in by_clock) for clock in chosen), key=_zone_order
    )
    if conflict:
        return names, "conflict"
    if len(chosen) > 1:
        return names, "ambiguous"
    alone = [kind for kind in _EVIDENCE if clocks.get(kind) == chosen]
    return names, alone[0] if alone else "combined"


def resolve_timezones(df: pl.DataFrame) -> pl.DataFrame:
    """Add timezone (one representative IANA zone or null), timezone_candidates, timezone_source,
    timezone_error(_message).

    Inputs (each optional): timezone (typed text), phone_e164 (its area code), phone_timezones
    (phonenumbers' zones, used when the area code is not NANP or unknown), state, postal_code, country,
    phone_region. See the module doc for the rule. Text that cannot be read is flagged `invalid_timezone`
    and gives no evidence; with no other evidence the row has no candidates (source "invalid").
    `timezone` is the first candidate (a conflict's first is only a representative: use the candidates).
    """
    outputs = ["timezone", "timezone_candidates", "timezone_source", "timezone_error", "timezone_error_message"]
    evidence = _evidence(df)
    keys = [*_EVIDENCE, "tz_error"]
    distinct = evidence.select(keys).unique()
    combined = [_combine(row, row["tz_error"] is not None) for row in distinct.iter_rows(named=True)]
    resolved = distinct.with_columns(
        pl.Series("resolved_timezone_candidates", [zones for zones, _ in combined], dtype=_ZONE_LIST),
        pl.Series("resolved_timezone_source", [source for _, source in combined], dtype=pl.Utf8),
    ).with_columns(resolved_timezone=pl.col("resolved_timezone_candidates").list.first())
    joined = evidence.join(resolved, on=keys, how="left", nulls_equal=True, maintain_order="left").with_columns(
        resolved_timezone_error=pl.col("tz_error"), resolved_timezone_error_message=pl.col("tz_error_message")
    )
    return df.with_columns(joined.select(pl.col(f"resolved_{name}").alias(name) for name in outputs))

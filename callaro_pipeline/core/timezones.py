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

import polars as pl

from callaro_pipeline.core import places
from callaro_pipeline.core.lists import distinct_sorted
from callaro_pipeline.core.timezone_references import (
    corrected_area_codes,
    exchange_zones,
    fsa_zone_table,
    npa_zone_table,
    state_zone_table,
    zip5_zone_table,
)
from callaro_pipeline.core.typed_timezones import parse_timezone_text
from callaro_pipeline.core.zone_clocks import ZONE_LIST_TYPE, zone_clock, zone_order

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
RESOLVE_INPUTS: dict[str, pl.DataType | type[pl.DataType]] = {
    "timezone": pl.Utf8,
    "phone_timezones": pl.List(pl.Utf8),
    "phone_e164": pl.Utf8,
    "state": pl.Utf8,
    "postal_code": pl.Utf8,
    "country": pl.Utf8,
    "phone_region": pl.Utf8,
}
_EVIDENCE = ("provided", "postal_code", "phone", "state")  # order of the names given to the candidates
_NANP_E164 = r"^\+1([2-9]\d{2})[2-9]\d{6}$"


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
    npa_table = npa_zone_table()
    fsa_table = fsa_zone_table()
    typed = parse_timezone_text(rows["timezone"])
    rows = rows.with_columns(
        _state_code=state_codes,
        _fsa_letter=pl.col("_fsa").str.slice(0, 1),
    ).join(zip5_zone_table().rename({"zip5": "_zip5", "zones": "_zip_zones"}), on="_zip5", how="left")
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
                pl.col("_npa").replace_strict(corrected_area_codes(), default=None),
                exchange_zones(pl.col("phone_e164")),
                pl.col("_npa").replace_strict(npa_table, default=None),
                # outside the NANP, the country's zones; a NANP code without a place (toll-free 8XX, 5XX, 900)
                # tells nothing, whatever phonenumbers lists for the whole country
                pl.when(pl.col("_npa").is_null()).then(phone_list.replace("", None)),
            ),
            state=pl.col("_state_code").replace_strict(state_zone_table(), default=None),
            postal_code=pl.coalesce(
                pl.col("_zip_zones"),
                pl.when(pl.col("_fsa").is_in(["X0A", "X0B", "X0C"]))
                .then(pl.lit(state_zone_table().get("NU")))
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
    # each piece may agree with the address while two of them disagree (a New York phone, Québec, typed AST)
    conflict = conflict or not set.intersection(*clocks.values())
    names = sorted(
        (next(by_clock[clock] for by_clock in sets.values() if clock in by_clock) for clock in chosen), key=zone_order
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
        pl.Series("resolved_timezone_candidates", [zones for zones, _ in combined], dtype=ZONE_LIST_TYPE),
        pl.Series("resolved_timezone_source", [source for _, source in combined], dtype=pl.Utf8),
    ).with_columns(resolved_timezone=pl.col("resolved_timezone_candidates").list.first())
    joined = evidence.join(resolved, on=keys, how="left", nulls_equal=True, maintain_order="left").with_columns(
        resolved_timezone_error=pl.col("tz_error"), resolved_timezone_error_message=pl.col("tz_error_message")
    )
    return df.with_columns(joined.select(pl.col(f"resolved_{name}").alias(name) for name in outputs))

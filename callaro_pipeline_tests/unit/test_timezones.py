"""Time zones from all evidence, compared by wall clock (contract: PRODUCT.md "Time zones"; issue 12)."""

import zoneinfo

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from callaro_pipeline.core.timezone_references import read_reference
from callaro_pipeline.core.timezones import TIMEZONE_SOURCES, resolve_timezones
from callaro_pipeline.core.typed_timezones import parse_timezone_text
from callaro_pipeline.core.zone_clocks import clock_classes, same_clock, zone_clock


def parsed(text: str | None) -> tuple[list[str], str | None]:
    row = parse_timezone_text(pl.Series([text], dtype=pl.Utf8)).row(0, named=True)
    return row["tz_candidates"], row["tz_error"]


def clocks(zones) -> set[int]:
    return {zone_clock(zone)[0] for zone in zones}


def phone(area_code: str) -> str:
    return f"+1{area_code}5550134"


def _area_code_state(e164: str | None) -> str | None:
    """The number's state as validation gives it (phones.py: longest prefix in nanp_prefix_states.csv)."""
    if e164 is None or not e164.startswith("+1"):
        return None
    table = dict(read_reference("nanp_prefix_states.csv").iter_rows())
    national = e164[2:]
    return next((table[national[:n]] or None for n in range(len(national), 2, -1) if national[:n] in table), None)


def resolve(**columns) -> list[dict]:
    if "phone_e164" in columns and "phone_state" not in columns:
        columns["phone_state"] = [_area_code_state(value) for value in columns["phone_e164"]]
    frame = pl.DataFrame(
        columns,
        schema_overrides={"phone_timezones": pl.List(pl.Utf8), "phone_state": pl.Utf8}
        if "phone_timezones" in columns
        else {"phone_state": pl.Utf8},
    )
    return resolve_timezones(frame).to_dicts()


def one(**columns) -> tuple[set[int], str]:
    (row,) = resolve(**{name: [value] for name, value in columns.items()})
    return clocks(row["timezone_candidates"]), row["timezone_source"]


NY, CHI, DEN, PHX, LA = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
)


# --- clocks ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("America/Detroit", NY, True),
        ("America/Toronto", NY, True),
        ("America/Indiana/Indianapolis", NY, True),
        ("America/North_Dakota/Center", CHI, True),
        ("America/Boise", DEN, True),
        ("America/Whitehorse", PHX, True),  # Yukon keeps UTC-7 all year since 2020
        ("America/Denver", "America/North_Dakota/Center", False),
        (DEN, PHX, False),
        ("America/Halifax", "America/Puerto_Rico", False),
        ("America/Regina", CHI, False),
    ],
)
def test_same_clock_compares_offsets_over_2026_2028(first, second, same):
    assert same_clock(first, second) is same


def test_clock_classes_group_by_clock():
    assert clock_classes([NY, "America/Detroit", CHI, "America/Winnipeg"]) == [
        [NY, "America/Detroit"],
        [CHI, "America/Winnipeg"],
    ]


# --- typed text --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zones"),
    [
        ("America/New_York", [NY]),
        ("america/los_angeles", [LA]),
        ("America/New York", [NY]),
        ("  Europe/London ", ["Europe/London"]),
        ("Eastern", [NY]),
        ("Eastern Standard Time", [NY]),
        ("Eastern Time (US & Canada)", [NY]),
        ("US/Eastern", [NY]),
        ("EDT", [NY]),
        ("CDT", [CHI]),
        ("Central", [CHI]),
        ("PST", [LA]),
        ("Pacific Daylight Time", [LA]),
        ("Arizona", [PHX]),
        ("US Mountain Standard Time", [PHX]),  # Windows name
        ("Pacific Standard Time", [LA]),
        ("Alaskan Standard Time", ["America/Anchorage"]),
        ("Hawaiian Standard Time", ["Pacific/Honolulu"]),
        ("Canada Central Standard Time", ["America/Regina"]),
        ("AKST", ["America/Anchorage"]),
        ("ChST", ["Pacific/Guam"]),
        ("SST", ["Pacific/Pago_Pago"]),
        ("NST", ["America/St_Johns"]),
        ("CET", ["Europe/Berlin"]),
    ],
)
def test_names_abbreviations_and_windows_names(text, zones):
    assert parsed(text) == (zones, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MST", {DEN, PHX}),
        ("Mountain", {DEN, PHX}),
        ("AST", {"America/Puerto_Rico", "America/Halifax"}),
        ("HST", {"Pacific/Honolulu", "America/Adak"}),
        ("E.S.T.", {NY, "America/Atikokan"}),
        ("EST", {NY, "America/Atikokan"}),
        ("CST", {CHI, "America/Regina"}),
        ("UTC-05:00", {NY, CHI, "America/Atikokan"}),
        ("UTC\u221205:00", {NY, CHI, "America/Atikokan"}),
        ("-0500", {NY, CHI, "America/Atikokan"}),
        ("GMT-5", {NY, CHI, "America/Atikokan"}),
        ("Etc/GMT+5", {NY, CHI, "America/Atikokan"}),
        ("UTC-07:00", {DEN, PHX, LA}),
    ],
)
def test_abbreviations_and_offsets_read_as_every_dst_aware_zone_with_that_offset(text, expected):
    zones, error = parsed(text)
    assert error is None
    assert clocks(zones) == clocks(expected)
    assert not any(zone.startswith("Etc/") for zone in zones)


@pytest.mark.parametrize("text", ["UTC+5:30", "+05:45", "UTC+01:00", "UTC", "GMT+2"])
def test_offsets_outside_north_america_never_give_etc_zones(text):
    zones, error = parsed(text)
    assert error is None and zones
    assert not any(zone.startswith("Etc/") or zone == "UTC" for zone in zones)


@pytest.mark.parametrize("text", ["Mars/Olympus", "IST", "UTC+15", "UTC-13", "UTC+05:17", "later", "5"])
def test_unreadable_text_is_invalid_without_echoing_the_value(text):
    frame = parse_timezone_text(pl.Series([text]))
    assert frame.row(0, named=True)["tz_candidates"] == []
    assert frame["tz_error"].to_list() == ["invalid_timezone"]
    assert text.lower() not in frame["tz_error_message"][0].lower()


@pytest.mark.parametrize("text", [None, "", "   "])
def test_missing_text_is_not_an_error(text):
    assert parsed(text) == ([], None)


# --- evidence by clock -------------------------------------------------------------------------------------


def test_sioux_falls_605_sd_57107_is_central():
    # a Sioux Falls exchange (605-221, Central in phonenumbers' exchange data) with a Sioux Falls address
    (row,) = resolve(phone_e164=["+16052211234"], state=["SD"], postal_code=["57107"])
    assert row["timezone"] == CHI and row["timezone_candidates"] == [CHI]
    # a 605 number of unknown exchange may be from West River (Mountain): both stay
    (row,) = resolve(phone_e164=[phone("605")], state=["SD"], postal_code=["57107"])
    assert clocks(row["timezone_candidates"]) == clocks([CHI, "America/Denver"])


def test_san_francisco_mobile_with_new_york_address_keeps_both():
    (row,) = resolve(phone_e164=[phone("415")], state=["NY"], postal_code=["10001"])
    assert clocks(row["timezone_candidates"]) == clocks([LA, NY])
    assert row["timezone_source"] == "conflict"


@pytest.mark.parametrize(("area_code", "postal"), [("364", "42001"), ("219", "46402"), ("448", "32501")])
def test_central_overlays_and_splits_paducah_gary_pensacola(area_code, postal):
    # the address is Central; the number's area spans Eastern and Central, and it may be from either side
    assert one(phone_e164=phone(area_code), postal_code=postal) == (clocks([CHI, NY]), "ambiguous")
    assert one(postal_code=postal) == (clocks([CHI]), "postal_code")
    # the phone alone keeps Central among its candidates
    zones, _ = one(phone_e164=phone(area_code))
    assert clocks([CHI]) <= zones


def test_orlando_689_is_eastern():
    assert one(phone_e164=phone("689")) == (clocks([NY]), "phone")


@pytest.mark.parametrize(
    ("area_code", "expected"),
    [
        ("867", ["America/Whitehorse", "America/Yellowknife", "America/Iqaluit", "America/Rankin_Inlet"]),
        ("250", ["America/Vancouver", "America/Dawson_Creek", "America/Edmonton"]),
        ("807", ["America/Toronto", "America/Winnipeg"]),
        ("418", ["America/Toronto", "America/Halifax", "America/Blanc-Sablon"]),
        ("474", ["America/Regina"]),
    ],
)
def test_area_codes_spanning_several_zones_keep_all_of_them(area_code, expected):
    zones, source = one(phone_e164=phone(area_code))
    assert clocks(expected) <= zones
    assert source == "ambiguous"


def test_multi_zone_area_code_narrowed_by_postal_code():
    # 867 serves three territories (no single phone state): the number may be from any of them, so its zones stay
    zones, source = one(phone_e164=phone("867"), postal_code="Y1A 1A1")
    assert clocks(["America/Whitehorse"]) < zones and source == "ambiguous"
    # 418 (eastern Quebec) spans Eastern and Atlantic: both kept with a Quebec City address
    assert clocks([NY]) <= one(phone_e164=phone("418"), state="Québec", postal_code="G1R 4S9")[0]


def test_typed_pacific_on_a_new_york_row_keeps_both():
    (row,) = resolve(timezone=["Pacific"], phone_e164=[phone("212")], state=["NY"])
    assert clocks(row["timezone_candidates"]) == clocks([LA, NY])
    assert row["timezone_source"] == "conflict"


def test_typed_zones_narrowed_by_the_rest():
    assert one(timezone="MST", postal_code="85001") == (clocks([PHX]), "postal_code")
    assert one(timezone="MST", state="Colorado") == (clocks([DEN]), "state")
    assert one(timezone="AST", state="PR") == (clocks(["America/Puerto_Rico"]), "state")
    assert one(timezone="UTC-05:00", state="NY") == (clocks([NY]), "state")
    assert one(timezone="E.S.T.", phone_e164=phone("212")) == (clocks([NY]), "phone")
    assert one(timezone="America/New York", postal_code="10001") == (clocks([NY]), "provided")
    assert one(timezone="ChST", postal_code="96910") == (clocks(["Pacific/Guam"]), "provided")
    assert one(timezone="US Mountain Standard Time") == (clocks([PHX]), "provided")
    assert one(timezone="CST", phone_e164=phone("270")) == (clocks([CHI]), "combined")


def test_typed_offset_contradicting_the_address_is_a_conflict():
    zones, source = one(timezone="UTC-05:00", postal_code="90210")
    assert source == "conflict" and clocks([LA, NY, CHI]) <= zones


def test_state_spellings_are_evidence():
    assert one(state="Fla.", postal_code="33101") == (clocks([NY]), "postal_code")
    assert one(state="Calif") == (clocks([LA]), "state")
    assert one(state="N.Y.") == (clocks([NY]), "state")
    assert one(state="Mass.") == (clocks([NY]), "state")
    assert one(state="Québec", country="Canada")[0] >= clocks([NY])


@pytest.mark.parametrize(
    ("postal", "zone"),
    [
        ("10001", NY),
        ("79901", DEN),
        ("75201-1234", CHI),
        ("83501", LA),
        ("83702", DEN),
        ("32501", CHI),
        ("85001", PHX),
        ("86515", DEN),
        ("96799", "Pacific/Pago_Pago"),
        ("00901", "America/Puerto_Rico"),
        ("T2P 1J9", "America/Edmonton"),
        ("h3b2y5", NY),
    ],
)
def test_postal_code_alone(postal, zone):
    assert one(postal_code=postal) == (clocks([zone]), "postal_code")


def test_excel_damaged_zip_is_no_evidence():
    assert one(postal_code="2134") == (set(), "unknown")


def test_multi_zone_state_without_postal_code_is_ambiguous():
    (row,) = resolve(state=["KY"], postal_code=["99999"])
    assert (row["timezone_source"], clocks(row["timezone_candidates"])) == ("ambiguous", clocks([CHI, NY]))


def test_unknown_text_alone_is_kept_with_no_candidates_and_with_evidence_is_ignored():
    (row,) = resolve(timezone=["Mars/Olympus"])
    assert (row["timezone"], row["timezone_candidates"], row["timezone_source"]) == (None, [], "invalid")
    assert row["timezone_error"] == "invalid_timezone"
    (row,) = resolve(timezone=["sometime"], phone_timezones=[["America/Chicago"]])
    assert row["timezone_error"] == "invalid_timezone"
    assert (row["timezone"], row["timezone_source"]) == (CHI, "phone")


def test_nothing_known_is_unknown():
    rows = resolve(timezone=[None, ""], phone_timezones=[None, []], state=[None, "Narnia"], postal_code=[None, "x"])
    assert [(r["timezone"], r["timezone_candidates"], r["timezone_source"]) for r in rows] == [
        (None, [], "unknown"),
        (None, [], "unknown"),
    ]


def test_foreign_country_disables_us_state_and_postal_rules():
    assert one(state="CA", postal_code="90210", country="Germany") == (set(), "unknown")


def test_phone_region_stands_in_for_a_missing_country():
    rows = resolve(
        phone_timezones=[["Australia/Perth", "Australia/Sydney"]], state=["WA"], phone_region=["AU"], country=[None]
    )
    assert rows[0]["timezone_source"] == "ambiguous"
    assert clocks(rows[0]["timezone_candidates"]) == clocks(["Australia/Perth", "Australia/Sydney"])


def test_missing_columns_are_treated_as_null_and_rows_keep_order():
    frame = pl.DataFrame({"id": [3, 1, 2], "state": ["NY", None, "HI"]})
    result = resolve_timezones(frame)
    assert result["id"].to_list() == [3, 1, 2]
    assert result["timezone"].to_list() == [NY, None, "Pacific/Honolulu"]
    assert set(result["timezone_source"]) <= set(TIMEZONE_SOURCES)
    assert result.columns == [
        "id",
        "state",
        "timezone",
        "timezone_candidates",
        "timezone_source",
        "timezone_error",
        "timezone_error_message",
    ]


def test_repeated_inputs_resolve_identically():
    frame = pl.DataFrame({"timezone": ["Eastern", None] * 500, "state": ["NY", "WA"] * 500})
    result = resolve_timezones(frame)
    assert result.height == 1000
    assert result["timezone"].to_list() == [NY, LA] * 500


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("state_timezones.csv", "zones"),
        ("zip5_timezones.csv", "zones"),
        ("ca_postal_timezones.csv", "zones"),
        ("area_code_timezones.csv", "zones"),
        ("timezone_aliases.csv", "zones"),
    ],
)
def test_reference_tables_name_real_zones(table, column):
    zones = read_reference(table)[column].drop_nulls().str.split(";").explode()
    assert set(zones) <= zoneinfo.available_timezones()


def test_every_area_code_correction_has_a_citation():
    table = read_reference("area_code_timezones.csv")
    assert table["citation"].str.len_chars().min() > 10
    assert table["area_code"].is_unique().all()


# --- property: nothing plausible is dropped, agreement gives one clock -------------------------------------

AREA_CODES = ["212", "415", "605", "364", "219", "448", "689", "867", "250", "807", "418", "270", "303", "602", "808"]
STATES = [None, "NY", "CA", "SD", "Fla.", "KY", "IN", "AZ", "Texas", "Québec", "N.Y.", "HI"]
ZIPS = [None, "10001", "57107", "42001", "46402", "32501", "85001", "90210", "33101", "96813", "79901", "K1A 0B1"]
TYPED = [None, "MST", "AST", "UTC-05:00", "Pacific", "E.S.T.", "US Mountain Standard Time", "HST", "Mars/Olympus"]
EVIDENCE = {"phone_e164": [None, *map(phone, AREA_CODES)], "state": STATES, "postal_code": ZIPS, "timezone": TYPED}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({name: st.sampled_from(values) for name, values in EVIDENCE.items()}))
@example({"phone_e164": phone("212"), "state": "Québec", "postal_code": None, "timezone": "AST"})
def test_every_single_evidence_zone_is_a_candidate(contact):
    (row,) = resolve(**{name: [value] for name, value in contact.items()})
    together = clocks(row["timezone_candidates"])
    alone = []
    for name, value in contact.items():
        if value is not None:
            (single,) = resolve(**{name: [value]})
            alone.append(clocks(single["timezone_candidates"]))
            if len(alone[-1]) == 1:
                assert alone[-1] <= together, (name, value)
    known = [zones for zones in alone if zones]
    if known:
        assert together <= set.union(*known)  # nothing invented
    if contact["postal_code"] is not None and contact["postal_code"] != "K1A 0B1":
        assert clocks(resolve(postal_code=[contact["postal_code"]])[0]["timezone_candidates"]) <= together
    if known and all(zones == known[0] for zones in known) and len(known[0]) == 1:
        assert together == known[0]  # agreeing evidence gives that one clock
    if known and not set.intersection(*known):
        assert row["timezone_source"] == "conflict"
    if len(together) == 1:
        assert row["timezone"] in row["timezone_candidates"]


def test_a_toll_free_number_alone_is_no_evidence():
    (row,) = resolve(
        phone_e164=["+18005550134"], phone_timezones=[["America/New_York", "America/Chicago", "America/Los_Angeles"]]
    )
    assert row["timezone_candidates"] == [] and row["timezone_source"] == "unknown"
    # with an address, the address decides
    (row,) = resolve(phone_e164=["+18885550134"], phone_timezones=[["America/New_York"]], postal_code=["94103"])
    assert row["timezone_candidates"] == [LA]

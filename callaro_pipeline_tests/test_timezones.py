import zoneinfo

import polars as pl
import pytest

from callaro_pipeline.timezones import TIMEZONE_SOURCES, parse_timezone_text, read_reference, resolve_timezones


def parsed(text: str | None) -> tuple[list[str], str | None]:
    row = parse_timezone_text(pl.Series([text], dtype=pl.Utf8)).row(0, named=True)
    return row["tz_candidates"], row["tz_error"]


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("America/New_York", "America/New_York"),
        ("america/los_angeles", "America/Los_Angeles"),
        ("  Europe/London ", "Europe/London"),
        ("EST", "America/New_York"),
        ("edt", "America/New_York"),
        ("ET", "America/New_York"),
        ("Eastern", "America/New_York"),
        ("Eastern Standard Time", "America/New_York"),
        ("Eastern Time (US & Canada)", "America/New_York"),
        ("US/Eastern", "America/New_York"),
        ("CST", "America/Chicago"),
        ("CDT", "America/Chicago"),
        ("CT", "America/Chicago"),
        ("Central", "America/Chicago"),
        ("MST", "America/Denver"),
        ("MDT", "America/Denver"),
        ("MT", "America/Denver"),
        ("Mountain Time", "America/Denver"),
        ("Arizona", "America/Phoenix"),
        ("PST", "America/Los_Angeles"),
        ("PDT", "America/Los_Angeles"),
        ("PT", "America/Los_Angeles"),
        ("Pacific Daylight Time", "America/Los_Angeles"),
        ("AKST", "America/Anchorage"),
        ("Alaska", "America/Anchorage"),
        ("HST", "Pacific/Honolulu"),
        ("Hawaii", "Pacific/Honolulu"),
        ("AST", "America/Halifax"),
        ("NST", "America/St_Johns"),
        ("GMT", "Etc/GMT"),
        ("UTC", "UTC"),
        ("BST", "Europe/London"),
        ("CET", "Europe/Berlin"),
        ("CEST", "Europe/Berlin"),
    ],
)
def test_names_and_abbreviations(text, zone):
    assert parsed(text) == ([zone], None)


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("UTC-05:00", "Etc/GMT+5"),
        ("UTC\u221205:00", "Etc/GMT+5"),
        ("GMT+2", "Etc/GMT-2"),
        ("-0500", "Etc/GMT+5"),
        ("+0100", "Etc/GMT-1"),
        ("UTC+14", "Etc/GMT-14"),
        ("UTC-12:00", "Etc/GMT+12"),
        ("UTC+00:00", "UTC"),
        ("UTC+5:30", "Asia/Kolkata"),
        ("+05:45", "Asia/Kathmandu"),
        ("UTC-03:30", "America/St_Johns"),
    ],
)
def test_offsets_map_to_etc_gmt_with_inverted_sign(text, zone):
    assert parsed(text) == ([zone], None)
    assert zone in zoneinfo.available_timezones()


@pytest.mark.parametrize("text", ["Mars/Olympus", "IST", "UTC+15", "UTC-13", "UTC+05:17", "later", "5"])
def test_unreadable_text_is_invalid_without_echoing_the_value(text):
    frame = parse_timezone_text(pl.Series([text]))
    assert frame.row(0, named=True)["tz_candidates"] == []
    assert frame["tz_error"].to_list() == ["invalid_timezone"]
    assert text.lower() not in frame["tz_error_message"][0].lower()


@pytest.mark.parametrize("text", [None, "", "   "])
def test_missing_text_is_not_an_error(text):
    assert parsed(text) == ([], None)


def resolve(**columns) -> list[dict]:
    schema = {"phone_timezones": pl.List(pl.Utf8)}
    frame = pl.DataFrame(columns, schema_overrides={k: v for k, v in schema.items() if k in columns})
    return resolve_timezones(frame).to_dicts()


def test_explicit_text_wins_over_everything():
    (row,) = resolve(timezone=["Pacific"], phone_timezones=[["America/New_York"]], state=["NY"])
    assert (row["timezone"], row["timezone_source"], row["timezone_candidates"]) == (
        "America/Los_Angeles",
        "provided",
        ["America/Los_Angeles"],
    )


def test_invalid_text_is_flagged_and_the_zone_still_inferred():
    (row,) = resolve(timezone=["sometime"], phone_timezones=[["America/Chicago"]])
    assert row["timezone_error"] == "invalid_timezone"
    assert "sometime" not in row["timezone_error_message"]
    assert (row["timezone"], row["timezone_source"]) == ("America/Chicago", "phone")


def test_phone_with_a_single_zone():
    (row,) = resolve(phone_timezones=[["America/Denver"]], state=["CA"])
    assert (row["timezone"], row["timezone_source"]) == ("America/Denver", "phone")


def test_state_narrows_phone_candidates():
    (row,) = resolve(phone_timezones=[["America/Denver", "America/Phoenix"]], state=["AZ"], postal_code=[None])
    assert row["timezone_source"] == "ambiguous"
    (row,) = resolve(phone_timezones=[["America/Denver", "America/North_Dakota/Center"]], state=["SD"])
    assert (row["timezone"], row["timezone_source"]) == ("America/Denver", "state")


@pytest.mark.parametrize("state", ["CA", "ca", " California ", "CALIFORNIA"])
def test_state_alone(state):
    (row,) = resolve(state=[state])
    assert (row["timezone"], row["timezone_source"]) == ("America/Los_Angeles", "state")


def test_multi_zone_state_is_narrowed_by_postal_code():
    rows = resolve(state=["TX", "TX", "ID", "ID", "FL"], postal_code=["79901", "75201-1234", "83501", "83702", "32501"])
    assert [(r["timezone"], r["timezone_source"]) for r in rows] == [
        ("America/Denver", "postal_code"),
        ("America/Chicago", "postal_code"),
        ("America/Los_Angeles", "postal_code"),
        ("America/Boise", "postal_code"),
        ("America/Chicago", "postal_code"),
    ]


def test_postal_code_alone_and_canadian_postal_codes():
    rows = resolve(postal_code=["10001", "T2P 1J9", "h3b2y5"], country=[None, "Canada", "CA"])
    assert [(r["timezone"], r["timezone_source"]) for r in rows] == [
        ("America/New_York", "postal_code"),
        ("America/Edmonton", "postal_code"),
        ("America/Toronto", "postal_code"),
    ]


def test_area_code_spanning_two_zones_without_state_is_ambiguous():
    (row,) = resolve(phone_timezones=[["America/St_Johns", "America/Halifax"]])
    assert row["timezone"] is None
    assert row["timezone_source"] == "ambiguous"
    assert row["timezone_candidates"] == ["America/Halifax", "America/St_Johns"]


def test_multi_zone_state_without_postal_code_is_ambiguous():
    (row,) = resolve(state=["KY"], postal_code=["99999"])
    assert (row["timezone"], row["timezone_source"]) == (None, "ambiguous")
    assert row["timezone_candidates"] == ["America/Chicago", "America/New_York"]


def test_contradicting_evidence_is_ignored():
    (row,) = resolve(phone_timezones=[["America/Boise", "America/Los_Angeles"]], state=["NY"], postal_code=["83702"])
    assert (row["timezone"], row["timezone_source"]) == ("America/Boise", "postal_code")


def test_nothing_known_is_unknown():
    rows = resolve(timezone=[None, ""], phone_timezones=[None, []], state=[None, "Narnia"], postal_code=[None, "x"])
    assert [(r["timezone"], r["timezone_candidates"], r["timezone_source"]) for r in rows] == [
        (None, [], "unknown"),
        (None, [], "unknown"),
    ]


def test_foreign_country_disables_us_state_and_postal_rules():
    (row,) = resolve(state=["CA"], postal_code=["90210"], country=["Germany"])
    assert row["timezone_source"] == "unknown"


def test_phone_region_stands_in_for_a_missing_country():
    rows = resolve(
        phone_timezones=[["Australia/Perth", "Australia/Sydney"], ["America/Boise", "America/Los_Angeles"]],
        state=["WA", "ID"],
        phone_region=["AU", "US"],
        country=[None, None],
    )
    assert [r["timezone_source"] for r in rows] == ["ambiguous", "ambiguous"]
    assert rows[0]["timezone_candidates"] == ["Australia/Perth", "Australia/Sydney"]


def test_missing_columns_are_treated_as_null_and_rows_keep_order():
    frame = pl.DataFrame({"id": [3, 1, 2], "state": ["NY", None, "HI"]})
    result = resolve_timezones(frame)
    assert result["id"].to_list() == [3, 1, 2]
    assert result["timezone"].to_list() == ["America/New_York", None, "Pacific/Honolulu"]
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
    frame = pl.DataFrame({"timezone": ["EST", None] * 500, "state": ["TX", "WA"] * 500})
    result = resolve_timezones(frame)
    assert result.height == 1000
    assert result["timezone"].to_list() == ["America/New_York", "America/Los_Angeles"] * 500


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("state_timezones.csv", "zones"),
        ("zip3_timezones.csv", "zones"),
        ("ca_postal_timezones.csv", "zones"),
        ("timezone_aliases.csv", "zone"),
    ],
)
def test_reference_tables_name_real_zones(table, column):
    zones = read_reference(table)[column].str.split(";").explode()
    assert set(zones) <= zoneinfo.available_timezones()

"""places: state spellings, ZIP / postal code -> state, the states whose calling rules apply."""

from __future__ import annotations

import polars as pl
import pytest

from callaro_pipeline.core.places import normalize_state, postal_state, rule_states


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("FL", "FL"),
        ("Fla.", "FL"),
        ("Florida", "FL"),
        (" florida ", "FL"),
        ("Calif", "CA"),
        ("Calif.", "CA"),
        ("N.Y.", "NY"),
        ("ny", "NY"),
        ("New York", "NY"),
        ("State of New York", "NY"),
        ("Mass.", "MA"),
        ("W. Va.", "WV"),
        ("West Virginia", "WV"),
        ("S.D.", "SD"),
        ("D.C.", "DC"),
        ("Washington, D.C.", "DC"),
        ("Puerto Rico", "PR"),
        ("Québec", "QC"),
        ("Quebec", "QC"),
        ("PQ", "QC"),
        ("Que.", "QC"),
        ("B.C.", "BC"),
        ("Colombie-Britannique", "BC"),
        ("Nfld.", "NL"),
        ("P.E.I.", "PE"),
        ("Île-du-Prince-Édouard", "PE"),
        ("N.W.T.", "NT"),
        ("Nunavut", "NU"),
        ("Yukon", "YT"),
        ("Narnia", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_state_spellings(text, code):
    assert normalize_state(pl.Series([text], dtype=pl.Utf8)).to_list() == [code]


def test_normalize_state_respects_the_country():
    states = pl.Series(["WA", "CA", "ON", "CA", "ON", "Texas"])
    countries = pl.Series(["Australia", "US", "Canada", "Canada", "USA", None])
    # a US or Canadian row keeps a state of the other country (its rules apply: stricter), never an Australian one
    assert normalize_state(states, countries).to_list() == [None, "CA", "ON", "CA", "ON", "TX"]


@pytest.mark.parametrize(
    ("postal", "code"),
    [
        ("33101", "FL"),  # Miami
        ("10001", "NY"),
        ("10001-1234", "NY"),
        ("100011234", "NY"),
        ("02134", "MA"),
        ("2134", None),  # Excel dropped the leading zero: not guessed
        ("57107", "SD"),
        ("42001", "KY"),  # Paducah
        ("46402", "IN"),  # Gary
        ("32501", "FL"),  # Pensacola
        ("00901", "PR"),
        ("00802", "VI"),
        ("96799", "AS"),  # American Samoa inside Hawaii's ZIP3
        ("96950", "MP"),  # Saipan inside Guam's ZIP3
        ("96910", "GU"),
        ("96940", None),  # Palau: no US state rules
        ("09001", None),  # APO
        ("88510", "TX"),  # El Paso in the 885 ZIP3
        ("K1A 0B1", "ON"),
        ("h2x1y4", "QC"),
        ("X0A 0H0", "NU"),  # Iqaluit
        ("X1A 2P7", "NT"),  # Yellowknife
        ("Y1A 1A1", "YT"),
        ("hello", None),
        (None, None),
    ],
)
def test_postal_state(postal, code):
    assert postal_state(pl.Series([postal], dtype=pl.Utf8)).to_list() == [code]


def test_postal_state_respects_the_country():
    codes = pl.Series(["33101", "33101", "K1A 0B1", "K1A 0B1"])
    countries = pl.Series(["US", "Canada", "Canada", "US"])
    assert postal_state(codes, countries).to_list() == ["FL", "FL", "ON", "ON"]
    assert postal_state(pl.Series(["33101"]), pl.Series(["Australia"])).to_list() == [None]


def test_rule_states_miami_zip_with_new_york_phone_and_no_state():
    contacts = pl.DataFrame({"phone_state": ["NY"], "postal_code": ["33101"]})
    result = rule_states(contacts)
    assert result.name == "rule_states"
    assert result.dtype == pl.List(pl.Utf8)
    assert result.to_list() == [["FL", "NY"]]


def test_rule_states_unions_distinct_sorted_and_tolerates_missing_columns():
    contacts = pl.DataFrame(
        {
            "phone_state": ["SD", "CA", None, "NY"],
            "state": ["S.D.", "N.Y.", None, "Fla."],
            "postal_code": ["57107", "33101", None, "10001"],
        }
    )
    assert rule_states(contacts).to_list() == [["SD"], ["CA", "FL", "NY"], [], ["FL", "NY"]]
    assert rule_states(pl.DataFrame({"other": [1, 2]})).to_list() == [[], []]
    assert rule_states(pl.DataFrame({"state": ["Mass."]})).to_list() == [["MA"]]


def test_rule_states_country_limits_address_not_phone():
    contacts = pl.DataFrame(
        {
            "phone_state": ["NY", "ON"],
            "state": ["WA", "QC"],
            "postal_code": ["2000", "H2X 1Y4"],
            "country": ["AU", "CA"],
        }
    )
    assert rule_states(contacts).to_list() == [["NY"], ["ON", "QC"]]


def test_distinct_sorted_drops_nulls_and_repeats_and_sorts_every_list():
    from callaro_pipeline.core.lists import distinct_sorted

    lists = [["TX", None, "FL", "TX"], [], None, ["b", "a", "B"]]
    got = pl.DataFrame({"x": lists}).select(distinct_sorted(pl.col("x")))["x"].to_list()
    expected = [sorted({v for v in row if v is not None}) if row is not None else None for row in lists]
    assert got == expected

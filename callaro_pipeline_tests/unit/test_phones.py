import importlib.util
import random
from pathlib import Path

import phonenumbers
import polars as pl
import pytest

from callaro_pipeline.core import phones
from callaro_pipeline.core.phones import PHONE_COLUMNS, PHONE_SCHEMA, SPREADSHEET_DAMAGE_MESSAGE, normalize_phones

ROOT = Path(__file__).resolve().parents[2]


def load_script(relative: str):
    """A script of benchmarks/ or tools/ (not part of the package) as a module."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/phones_bench.py")


def one(value: str | None, region: str = "US") -> dict:
    """The answer for one value, the same whether phonenumbers (as for a small upload) or the metadata gives it."""
    values = pl.Series([value], dtype=pl.Utf8)
    answer = normalize_phones(values, region).row(0, named=True)
    assert normalize_phones(values, region, metadata_from=0).row(0, named=True) == answer
    return answer


@pytest.mark.parametrize(
    ("value", "e164", "extension"),
    [
        ("(415) 555-0134", "+14155550134", None),
        ("415.555.0134", "+14155550134", None),
        ("+1 415 555 0134", "+14155550134", None),
        ("1-415-555-0134", "+14155550134", None),
        ("4155550134", "+14155550134", None),
        ("  415 555 0134  ", "+14155550134", None),
        ("4155550134.0", "+14155550134", None),
        ("(415) 555-0134 x123", "+14155550134", "123"),
        ("415-555-0134 ext. 45", "+14155550134", "45"),
        ("415.555.0134;ext=7", "+14155550134", "7"),
        ("415 555 0134 extension 9", "+14155550134", "9"),
        ("415 555 0134 #12", "+14155550134", "12"),
        ("415-555-0134 ext. 1234567", "+14155550134", "1234567"),
        ("+44 20 7946 0958", "+442079460958", None),
        ("1-800-FLOWERS", "+18003569377", None),
    ],
)
def test_formats_become_e164_with_extension_apart(value, e164, extension):
    row = one(value)
    assert (row["phone_e164"], row["phone_extension"], row["phone_error"]) == (e164, extension, None)


def test_number_details():
    row = one("(415) 555-0134")
    assert (row["phone_type"], row["phone_region"], row["phone_state"]) == ("fixed_line_or_mobile", "US", "CA")
    assert row["phone_timezones"] == ["America/Los_Angeles"]
    london = one("+44 20 7946 0958")
    assert (london["phone_type"], london["phone_region"], london["phone_state"]) == ("fixed_line", "GB", None)
    toll_free = one("1-800-555-0199")
    assert (toll_free["phone_type"], toll_free["phone_state"]) == ("toll_free", None)
    assert "Etc/Unknown" not in toll_free["phone_timezones"]


@pytest.mark.parametrize(
    ("value", "state", "region"),
    [
        ("212 555 0100", "NY", "US"),
        ("+1 902 368 1234", "PE", "CA"),
        ("(604) 555-0100", "BC", "CA"),
        ("876 555 0100", None, "JM"),
    ],
)
def test_state_of_north_american_numbers(value, state, region):
    row = one(value)
    assert (row["phone_state"], row["phone_region"]) == (state, region)


def test_default_region_reads_national_numbers_but_not_international_ones():
    assert one("020 7946 0958", "GB")["phone_e164"] == "+442079460958"
    assert one("+1 415 555 0134", "GB")["phone_e164"] == "+14155550134"
    assert one("4155550134", "GB")["phone_error"] == "invalid_phone"
    assert one("(613) 555-0100", "ca")["phone_region"] == "CA"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing(value):
    row = one(value)
    assert (row["phone_error"], row["phone_error_message"]) == ("missing_required", "phone number is missing")
    assert row["phone_timezones"] == []


@pytest.mark.parametrize("value", ["(555) 123-4567", "0415550134", "123-456-7890", "12345", "call me", "+999 123"])
def test_invalid_numbers_have_a_message_without_the_value(value):
    row = one(value)
    assert row["phone_error"] == "invalid_phone"
    assert row["phone_e164"] is None
    assert value not in row["phone_error_message"]


def test_invalid_message_names_the_region():
    assert one("(555) 123-4567")["phone_error_message"] == "not a valid number for region US"
    assert one("+1 555 123 4567")["phone_error_message"] == "not a valid international phone number"


@pytest.mark.parametrize("value", ["4.15556E+09", "4.155550134e+09", "4,15556E+09", "4E+09"])
def test_spreadsheet_scientific_notation_asks_for_a_text_reexport(value):
    row = one(value)
    assert row["phone_error"] == "invalid_phone"
    assert row["phone_error_message"] == SPREADSHEET_DAMAGE_MESSAGE
    assert "spreadsheet" in SPREADSHEET_DAMAGE_MESSAGE and "text" in SPREADSHEET_DAMAGE_MESSAGE


def test_shape_order_and_types():
    values = ["+44 20 7946 0958", None, "(415) 555-0134", "junk", "(415) 555-0134", ""]
    result = normalize_phones(pl.Series("phone", values))
    assert result.columns == PHONE_COLUMNS
    assert result.schema == pl.Schema(PHONE_SCHEMA)
    assert result["phone_e164"].to_list() == ["+442079460958", None, "+14155550134", None, "+14155550134", None]
    assert normalize_phones(pl.Series([], dtype=pl.Utf8)).height == 0
    assert normalize_phones(pl.Series([None, None])).height == 2


def assert_agrees(bench, values: list[str | None], region: str) -> None:
    """North American numbers answered from the metadata (whatever their count) agree with plain phonenumbers."""
    expected = bench.naive(values, region)
    actual = normalize_phones(pl.Series(values, dtype=pl.Utf8), region, metadata_from=0)
    mismatches = bench.disagreements(values, expected, actual)
    assert mismatches.height == 0, mismatches.head(5).to_dicts()


def test_agrees_with_plain_phonenumbers_on_generated_values(bench):
    values = bench.generate_phone_values(50_000, seed=7)
    assert_agrees(bench, values, "US")


@pytest.mark.parametrize("region", ["CA", "JM", "BS", "GB"])
def test_agrees_with_plain_phonenumbers_for_other_default_regions(bench, region):
    assert_agrees(bench, bench.generate_phone_values(5_000, seed=11), region)


def example_numbers() -> dict[str, list[str]]:
    """Every region's example numbers of every type, national format (by region) and international."""
    kinds = [v for k, v in vars(phonenumbers.PhoneNumberType).items() if isinstance(v, int) and k != "UNKNOWN"]
    by_region: dict[str, list[str]] = {"US": []}
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in kinds:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            by_region.setdefault(region, []).append(
                phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
            )
            by_region["US"].append(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
    return by_region


def test_agrees_with_plain_phonenumbers_on_every_example_number(bench):
    examples = example_numbers()
    assert sum(map(len, examples.values())) > 2000
    for region, values in examples.items():
        assert_agrees(bench, values, region)


def test_agrees_with_plain_phonenumbers_on_random_north_american_numbers(bench):
    """Every area code and exchange digit, in national and international form, against phonenumbers'
    metadata regexes as polars runs them (phone_metadata: the Rust regex engine)."""
    rng = random.Random(5)
    digits = [f"{rng.randrange(2, 10)}{rng.randrange(10**9):09d}" for _ in range(30_000)]
    digits += [f"{area}{rng.randrange(10**7):07d}" for area in range(200, 1000) for _ in range(8)]
    values = [number if i % 2 else f"+1 {number}" for i, number in enumerate(digits)]
    assert_agrees(bench, values, "US")
    assert_agrees(bench, values[:5000], "JM")


@pytest.mark.slow
def test_committed_state_table_matches_the_installed_geocoder():
    committed = phones.read_reference("nanp_prefix_states.csv").rows()
    assert committed == load_script("tools/build_nanp_prefix_states.py").geocoder_state_rows()

import importlib.util
import random
from pathlib import Path

import phonenumbers
import polars as pl
import pytest
from phonenumbers import timezone as pn_timezone

from callaro_pipeline import phones
from callaro_pipeline.phones import PHONE_COLUMNS, PHONE_SCHEMA, SPREADSHEET_DAMAGE_MESSAGE, normalize_phones

BENCH_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "phones_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("phones_bench", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True, scope="module")
def isolated_cache(tmp_path_factory):
    """The NPA-NXX blocks are cached under CALLARO_HOME: build them once here, in a throwaway home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CALLARO_HOME", str(tmp_path_factory.mktemp("home")))
        phones.nanp_blocks.cache_clear()
        phones._block_index.cache_clear()
        yield
    phones.nanp_blocks.cache_clear()
    phones._block_index.cache_clear()


def one(value: str | None, region: str = "US") -> dict:
    return normalize_phones(pl.Series([value], dtype=pl.Utf8), region).row(0, named=True)


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
    expected = bench.naive(values, region)
    actual = normalize_phones(pl.Series(values, dtype=pl.Utf8), region)
    mismatches = bench.disagreements(values, expected, actual)
    assert mismatches.height == 0, mismatches.head(5).to_dicts()


def test_agrees_with_plain_phonenumbers_on_generated_values(bench):
    values = bench.generate_phone_values(200_000, seed=7)
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


def block_answer(number: phonenumbers.PhoneNumber) -> tuple:
    if not phonenumbers.is_valid_number(number):
        return (False,)
    zones = pn_timezone.time_zones_for_number(number)
    return (phonenumbers.number_type(number), phonenumbers.region_code_for_number(number), zones)


def answers_for_prefix(prefix: str) -> set[tuple]:
    base = int(prefix) * 10_000
    return {
        block_answer(phonenumbers.PhoneNumber(country_code=1, national_number=base + line)) for line in range(10_000)
    }


def test_prefixes_found_non_uniform_really_are():
    blocks = phones.nanp_blocks()
    mixed = blocks.filter(~pl.col("uniform"))["block"].to_list()
    assert 0 < len(mixed) < 20
    for prefix in mixed:
        assert len(answers_for_prefix(prefix)) > 1, prefix


def test_prefixes_found_uniform_have_one_answer_for_all_ten_thousand_lines():
    uniform = set(phones.nanp_blocks().filter(pl.col("uniform"))["block"])
    sample = ["415555", "605673", "208589", "907834", "876605", "246520", "800555", "555123"]
    rng = random.Random(3)
    sample += [f"{rng.randrange(200, 1000)}{rng.randrange(200, 1000)}" for _ in range(4)]
    for prefix in sample:
        assert any(prefix.startswith(block) for block in uniform), prefix
        assert len(answers_for_prefix(prefix)) == 1, prefix


@pytest.mark.slow
def test_committed_state_table_matches_the_installed_geocoder():
    committed = phones.read_reference("nanp_prefix_states.csv").rows()
    assert committed == phones.geocoder_state_rows()

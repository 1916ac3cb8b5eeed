import re
from pathlib import Path

import polars as pl
import pytest

from callaro_pipeline.core.applying_mapping import apply_mapping
from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.header_matching import auto_map
from callaro_pipeline.core.mapping import source_columns
from callaro_pipeline.core.problems import PROBLEM_CODES, PROBLEM_SCHEMA
from callaro_pipeline.core.validation import VALIDATED_COLUMNS, validate_contacts

REGISTRY = {
    "plan_tier": CustomField("plan_tier", "string", "sales-ops", "plan"),
    "renewal_date": CustomField("renewal_date", "date", "sales-ops", "renewal"),
    "lifetime_value": CustomField("lifetime_value", "number", "finance", "value"),
    "seats": CustomField("seats", "integer", "sales-ops", "licensed seats"),
    "vip": CustomField("vip", "boolean", "sales-ops", "key account"),
}
SQL = Path(__file__).resolve().parents[2] / "callaro_pipeline" / "storage" / "sql" / "10_contacts.sql"


def validate(malformed=None, region="US", **columns):
    """Source columns as a user's file would have them (header = row 1, data from row 2)."""
    rows = pl.DataFrame(columns, schema={name: pl.Utf8 for name in columns})
    mapping = auto_map(rows.columns, REGISTRY)
    mapped = apply_mapping(rows, mapping, REGISTRY)
    return validate_contacts(
        mapped, source_columns=source_columns(mapping), default_region=region, registry=REGISTRY, malformed=malformed
    )


def problem_lines(result):
    return result.problems.select("row_number", "column", "field", "code", "value").rows()


def test_valid_columns_are_those_of_the_validated_contacts_table():
    table = re.search(r"CREATE TABLE IF NOT EXISTS validated_contacts \((.*?)\);", SQL.read_text(), re.S).group(1)
    sql_columns = [name for name in re.findall(r"(?:^|,)\s*([a-z_0-9]+) [A-Z]", table, re.M) if name != "upload_id"]
    result = validate(Phone=["(415) 555-0134"], Name=["Ann Lee"])
    assert list(result.valid.columns) == sql_columns == list(VALIDATED_COLUMNS)
    assert result.valid.schema["timezone_candidates"] == pl.List(pl.Utf8)
    assert result.valid.schema["row_number"] == pl.Int64


def test_a_clean_row_is_normalized():
    result = validate(
        Phone=["(415) 555-0134 ext. 12"],
        Vorname=["Ann"],
        Email=["Ann@Example.COM"],
        Consent=["Opt-In"],
        TZ=["Pacific"],
        Plan_Tier=["pro"],
    )
    assert result.problems.is_empty()
    row = result.valid.row(0, named=True)
    assert (row["phone_e164"], row["phone_extension"], row["phone_region"]) == ("+14155550134", "12", "US")
    assert (row["first_name"], row["email"], row["consent"]) == ("Ann", "Ann@example.com", "yes")
    assert (row["timezone"], row["timezone_source"]) == ("America/Los_Angeles", "provided")
    assert row["custom_fields"] == '{"plan_tier":"pro"}'
    assert result.rows_read == 1


def test_missing_phone_and_missing_name_are_missing_required():
    result = validate(Phone=["", "4155550134"], First_Name=["Ann", ""], Last_Name=["", None])
    assert problem_lines(result) == [
        (2, "Phone", "phone", "missing_required", None),
        (3, "First_Name, Last_Name", "name", "missing_required", None),
    ]
    assert result.valid.is_empty()


def test_external_id_instead_of_a_name_is_enough():
    result = validate(Phone=["4155550134"], Customer_ID=["C-1"])
    assert result.problems.is_empty()
    assert result.valid["external_id"].to_list() == ["C-1"]


def test_invalid_phone_keeps_the_raw_cell():
    result = validate(Phone=["12", "4.15556E+09", "+44 20 7946 0958"], Name=["A", "B", "C"])
    assert problem_lines(result) == [
        (2, "Phone", "phone", "invalid_phone", "12"),
        (3, "Phone", "phone", "invalid_phone", "4.15556E+09"),
    ]
    assert result.valid["phone_e164"].to_list() == ["+442079460958"]


def test_default_region_applies_to_national_numbers():
    result = validate(Phone=["030 901820"], Name=["A"], region="DE")
    assert result.valid["phone_e164"].to_list() == ["+4930901820"]


def test_invalid_timezone():
    result = validate(Phone=["4155550134", "4155550135"], Name=["A", "B"], Time_Zone=["Mars/Olympus", "UTC-05:00"])
    # kept (not rejected, so it can be fixed later), flagged, with no candidate zone from the unreadable text
    assert problem_lines(result) == []
    assert result.valid["timezone_source"].to_list()[0] in ("phone", "conflict")


def test_invalid_email_without_network():
    result = validate(
        Phone=["4155550134", "4155550135", "4155550136", "4155550137"],
        Name=["A", "B", "C", "D"],
        E_mail=["bad@", "no-at-sign", "bad@", "ok@callaro-example.com"],
    )
    assert problem_lines(result) == [
        (2, "E_mail", "email", "invalid_email", "bad@"),
        (3, "E_mail", "email", "invalid_email", "no-at-sign"),
        (4, "E_mail", "email", "invalid_email", "bad@"),
    ]
    assert result.valid["email"].to_list() == ["ok@callaro-example.com"]


@pytest.mark.parametrize(
    ("cell", "consent"),
    [
        ("yes", "yes"),
        ("Y", "yes"),
        ("TRUE", "yes"),
        ("1", "yes"),
        ("opt-in", "yes"),
        ("Ja", "yes"),
        ("sí", "yes"),
        ("oui", "yes"),
        ("no", "no"),
        ("N", "no"),
        ("false", "no"),
        ("0", "no"),
        ("Opt-Out", "no"),
        ("nein", "no"),
        ("", "unknown"),
        (None, "unknown"),
        ("unknown", "unknown"),
    ],
)
def test_consent_is_normalized(cell, consent):
    result = validate(Phone=["4155550134"], Name=["A"], Consent=[cell])
    assert result.valid["consent"].to_list() == [consent]


def test_invalid_consent():
    result = validate(Phone=["4155550134"], Name=["A"], Consent=["maybe later"])
    assert problem_lines(result) == [(2, "Consent", "consent", "invalid_consent", "maybe later")]


def test_invalid_custom_fields_by_type():
    result = validate(
        Phone=["4155550134", "4155550135", "4155550136", "4155550137", "4155550138"],
        Name=["A", "B", "C", "D", "E"],
        renewal_date=["31/01/2025", "2025-01-31", None, None, None],
        lifetime_value=[None, "lots", "1,200.50", None, None],
        seats=[None, None, None, "4.5", "12"],
        vip=[None, None, None, None, "perhaps"],
        plan_tier=["anything", "goes", "for", "a", "string"],
    )
    assert problem_lines(result) == [
        (2, "renewal_date", "custom.renewal_date", "invalid_custom_field", "31/01/2025"),
        (3, "lifetime_value", "custom.lifetime_value", "invalid_custom_field", "lots"),
        (5, "seats", "custom.seats", "invalid_custom_field", "4.5"),
        (6, "vip", "custom.vip", "invalid_custom_field", "perhaps"),
    ]
    assert result.valid["row_number"].to_list() == [4]
    assert result.valid["custom_fields"].to_list() == [
        '{"renewal_date":null,"lifetime_value":1200.5,"seats":null,"vip":null,"plan_tier":"for"}'
    ]


def test_malformed_rows_from_the_reader():
    malformed = pl.DataFrame({"row_number": [3], "message": ["unclosed quote"]})
    result = validate(malformed=malformed, Phone=["4155550134"], Name=["A"])
    assert result.problems.filter(pl.col("code") == "malformed_row").rows() == [
        (3, None, None, "malformed_row", "unclosed quote", None)
    ]
    assert result.rows_read == 2
    assert result.valid["row_number"].to_list() == [2]


def test_one_line_per_problem_and_the_row_is_rejected_once():
    result = validate(Phone=["12", "4155550135"], Name=["", "B"], Email=["x@", None], Consent=["perhaps", "yes"])
    assert result.problems.filter(pl.col("row_number") == 2)["code"].to_list() == [
        "invalid_phone",
        "missing_required",
        "invalid_email",
        "invalid_consent",
    ]
    assert result.valid["row_number"].to_list() == [3]
    assert result.rows_read == 2


def test_problems_schema_and_every_code_is_documented():
    result = validate(
        malformed=pl.DataFrame({"row_number": [9], "message": ["bad line"]}),
        Phone=["", "12", "4155550134", "4155550135", "4155550136", "4155550137"],
        Name=["A", "B", "", "D", "E", "F"],
        TZ=[None, None, None, "Nowhere/Else", None, None],
        Email=[None, None, None, None, "x@", None],
        Consent=[None, None, None, None, None, "later"],
        seats=[None, None, None, None, None, "many"],
    )
    assert result.problems.schema == pl.Schema(PROBLEM_SCHEMA)
    assert set(result.problems["code"]) == set(PROBLEM_CODES) - {"duplicate", "value_too_long", "garbled_text"}
    # only the row with an unreadable time zone is kept (zoned by its phone; contract: kept, never rejected)
    assert result.valid["timezone_source"].to_list() == ["phone"]


def test_empty_input():
    result = validate(Phone=[], Name=[])
    assert result.valid.is_empty() and result.problems.is_empty() and result.rows_read == 0
    assert list(result.valid.columns) == list(VALIDATED_COLUMNS)


# --- several phone columns, invisible names, field lengths, double-encoded text ------------------------------


def test_the_first_valid_of_several_phone_columns_is_the_phone_and_the_others_are_kept():
    result = validate(
        **{
            "Name": ["Ann", "Bob", "Cy", "Di"],
            "Phone Number": ["4155550134", None, "not a number", "12"],
            "Mobile Phone Number": ["4155550199", "4155550135", "4155550137", "34"],
        }
    )
    valid = result.valid.select("row_number", "phone_e164", "other_phones_e164").rows()
    assert valid == [
        (2, "+14155550134", ["+14155550199"]),
        (3, "+14155550135", None),  # only a mobile number: not missing a phone
        (4, "+14155550137", None),  # the first column's value is not a number, the second is
    ]
    assert problem_lines(result) == [(5, "Phone Number", "phone", "invalid_phone", "12")]
    assert result.valid.schema["other_phones_e164"] == pl.List(pl.Utf8)


def test_names_made_only_of_invisible_characters_are_missing():
    result = validate(
        Name=["\u200b\u200b", "\u202e\u202c\u200f", "\u2066 \u2069", "\u202eAnn Lee"],
        Phone=["4155550134", "4155550135", "4155550136", "4155550137"],
    )
    assert [(row, code) for row, _, field, code, _ in problem_lines(result)] == [
        (2, "missing_required"),
        (3, "missing_required"),
        (4, "missing_required"),
    ]
    assert result.valid["full_name"].to_list() == ["Ann Lee"]  # bidi controls are stripped from stored values


def test_values_over_their_field_limit_are_rejected_and_shown_cut():
    huge = "A" * 50_000
    result = validate(
        Name=[huge, "Ann", "Bob"],
        Company=["Acme", "C" * 301, "Acme"],
        Phone=["4155550134", "4155550135", "4155550136"],
        plan_tier=[None, None, "P" * 1001],
    )
    lines = result.problems.select("row_number", "field", "code", "message", "value").rows()
    assert [(row, field, code) for row, field, code, _, _ in lines] == [
        (2, "full_name", "value_too_long"),
        (3, "company", "value_too_long"),
        (4, "custom.plan_tier", "value_too_long"),
    ]
    assert lines[0][3] == "full_name is 50000 characters long; at most 200 are allowed"
    assert all(len(value) == 81 and value.endswith("…") for *_, value in lines)
    assert result.valid.is_empty()


def test_problem_messages_and_values_never_carry_a_whole_huge_value():
    result = validate(Name=["Ann"], Phone=["4155550134"], Email=["x" * 5000 + "@"])
    assert result.problems["code"].to_list() == ["value_too_long"]
    assert all(len(text) <= 301 for text in result.problems["message"].to_list())
    assert all(len(text) <= 1001 for text in result.problems["value"].drop_nulls().to_list())


def test_double_encoded_names_are_rejected_as_garbled_text():
    result = validate(
        Name=["JÃ¼rgen MÃ¼ller", "Jürgen Müller", "SÃO PAULO LTDA", "Ã‰milie"],
        Phone=["4155550134", "4155550135", "4155550136", "4155550137"],
    )
    assert [(row, code) for row, _, _, code, _ in problem_lines(result)] == [(2, "garbled_text"), (5, "garbled_text")]

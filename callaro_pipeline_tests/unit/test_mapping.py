import json

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callaro_pipeline.core.applying_mapping import apply_mapping
from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.column_drift import ColumnDrift, column_drift, lost_fields
from callaro_pipeline.core.errors import MappingError
from callaro_pipeline.core.header_matching import auto_map
from callaro_pipeline.core.mapping import Mapping, normalize_header, source_columns
from callaro_pipeline.core.mapping_files import load_mapping_file
from callaro_pipeline.core.schema import STANDARD_FIELDS

REGISTRY = {
    "plan_tier": CustomField("plan_tier", "string", "sales-ops", "plan"),
    "renewal_date": CustomField("renewal_date", "date", "sales-ops", "renewal"),
    "lifetime_value": CustomField("lifetime_value", "number", "finance", "value"),
    "seats": CustomField("seats", "integer", "sales-ops", "licensed seats"),
    "vip": CustomField("vip", "boolean", "sales-ops", "key account"),
}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            ["Phone Number", "E-mail", "First Name", "Last Name", "Company", "Time Zone", "Zip", "Lead Source"],
            ["phone", "email", "first_name", "last_name", "company", "timezone", "postal_code", "lead_source"],
        ),
        (
            ["Telefon", "E-Mail", "Vorname", "Nachname", "Firma", "Zeitzone", "PLZ", "Bundesland", "Land"],
            ["phone", "email", "first_name", "last_name", "company", "timezone", "postal_code", "state", "country"],
        ),
        (
            ["Teléfono", "Correo", "Nombre", "Apellido", "Empresa", "Código postal", "Estado", "País"],
            ["phone", "email", "first_name", "last_name", "company", "postal_code", "state", "country"],
        ),
        (
            ["Téléphone", "Courriel", "Prénom", "Nom", "Société", "Code postal", "Pays", "Consentement"],
            ["phone", "email", "first_name", "last_name", "company", "postal_code", "country", "consent"],
        ),
        (["Mobile", "TZ", "Opt-in", "Source"], ["phone", "timezone", "consent", "lead_source"]),
        (["Handy", "Mobiltelefon"], ["phone", "phone"]),  # several phone columns: priority order
    ],
)
def test_aliases_in_four_languages(headers, expected):
    mapping = auto_map(headers, REGISTRY)
    assert [mapping.fields.get(h) for h in headers] == expected
    assert mapping.source == "auto"
    assert all(mapping.scores[h] == 100 for h in mapping.fields)


def test_headers_are_normalized_for_case_accents_and_punctuation():
    assert normalize_header("  TÉLÉPHONE-Nr. ") == "telephone nr"
    mapping = auto_map(["PHONE_NUMBER", "e.mail", " zip-code ", "FIRSTNAME"], REGISTRY)
    assert mapping.fields == {
        "PHONE_NUMBER": "phone",
        "e.mail": "email",
        " zip-code ": "postal_code",
        "FIRSTNAME": "first_name",
    }


def test_fuzzy_match_respects_the_threshold():
    mapping = auto_map(["Phone Numbr", "Emial"], REGISTRY)
    assert mapping.fields == {"Phone Numbr": "phone"}
    assert 85 <= mapping.scores["Phone Numbr"] < 100
    assert mapping.unmapped == ["Emial"]
    assert auto_map(["Emial"], REGISTRY, threshold=75).fields == {"Emial": "email"}


def test_a_longer_header_is_not_swallowed_by_a_shorter_alias():
    mapping = auto_map(["Phone Type", "Email Opt-in Status", "Notes"], REGISTRY)
    assert mapping.fields == {}
    assert mapping.unmapped == ["Phone Type", "Email Opt-in Status", "Notes"]


def test_two_columns_never_feed_one_field_except_phone_in_priority_order():
    mapping = auto_map(["Mobile", "Phone", "Emial Address", "Email"], REGISTRY)
    assert mapping.fields == {"Mobile": "phone", "Phone": "phone", "Email": "email"}
    assert mapping.phone_columns == ["Phone", "Mobile"]  # "Phone" beats "Mobile"
    assert source_columns(mapping)["phone"] == "Phone"
    assert mapping.unmapped == ["Emial Address"]


def test_custom_fields_match_by_registry_name_only():
    mapping = auto_map(["Plan Tier", "renewal_date", "Loyalty Level"], REGISTRY)
    assert mapping.fields == {"Plan Tier": "custom.plan_tier", "renewal_date": "custom.renewal_date"}
    assert mapping.unmapped == ["Loyalty Level"]


def test_remembered_mapping_is_reused_for_the_columns_it_knows():
    remembered = Mapping(
        fields={"Contact No": "phone", "Tier": "custom.plan_tier", "Gone": "custom.retired_field"},
        unmapped=["Plan Tier"],
        source="file",
        scores={},
        default_region="DE",
        duplicates="merge",
    )
    mapping = auto_map(["Contact No", "Tier", "E-mail", "Gone", "Plan Tier"], REGISTRY, remembered=remembered)
    assert mapping.source == "remembered"
    # Plan Tier is matched again, but its field is taken by the remembered Tier; Gone's field is undeclared now.
    assert mapping.fields == {"Contact No": "phone", "Tier": "custom.plan_tier", "E-mail": "email"}
    assert mapping.unmapped == ["Gone", "Plan Tier"]
    assert (mapping.default_region, mapping.duplicates) == ("DE", "merge")


def test_remembered_mapping_without_known_columns_is_plain_auto():
    remembered = Mapping(fields={"Old": "phone"}, unmapped=[], source="auto", scores={})
    assert auto_map(["Phone"], REGISTRY, remembered=remembered).source == "auto"


def test_mapping_json_round_trip():
    mapping = auto_map(["Telefon", "Vorname", "Plan Tier", "Notes"], REGISTRY)
    assert Mapping.from_json(mapping.to_json()) == mapping
    with pytest.raises(MappingError, match="unreadable"):
        Mapping.from_json("{not json")


def write(tmp_path, text):
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


COLUMNS = ["Tel", "Given", "Plan", "Notes"]


def test_mapping_file(tmp_path):
    path = write(
        tmp_path,
        "columns:\n  Tel: phone\n  Given: first_name\n  Plan: custom.plan_tier\n  Notes: null\n"
        "default_region: gb\nduplicates: split\n",
    )
    mapping = load_mapping_file(path, COLUMNS, REGISTRY)
    assert mapping.fields == {"Tel": "phone", "Given": "first_name", "Plan": "custom.plan_tier"}
    assert mapping.unmapped == ["Notes"]
    assert (mapping.source, mapping.default_region, mapping.duplicates) == ("file", "GB", "split")
    assert source_columns(mapping) == {"phone": "Tel", "first_name": "Given", "custom.plan_tier": "Plan"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("columns: [unclosed", "not valid YAML"),
        ("- Tel\n- phone\n", "must hold `columns:`"),
        ("columns:\n  Telephone: phone\n", "'Telephone', which is not in the uploaded file"),
        ("columns:\n  Tel: email\n  Given: email\n", "'Tel' and 'Given' are both mapped to email"),
        ("columns:\n  email: [Tel, Given]\n", "only phone may name several columns"),
        ("columns:\n  phone: [Tel, Telephone]\n", "'Telephone', which is not in the uploaded file"),
        ("columns:\n  Tel: phone_number\n", "unknown field 'phone_number'"),
        ("columns:\n  Plan: plan_tier\n", "did you mean custom.plan_tier"),
        ("columns:\n  Plan: custom.loyalty\n", "custom.loyalty, which is not declared"),
        ("columns:\n  Tel: phone\ndefault_region: USA\n", "two-letter country code"),
        ("columns:\n  Tel: phone\nduplicates: keep\n", "duplicates must be one of suppress, merge, split"),
    ],
)
def test_mapping_file_errors(tmp_path, text, message):
    with pytest.raises(MappingError, match=message) as error:
        load_mapping_file(write(tmp_path, text), COLUMNS, REGISTRY)
    assert "\n" not in str(error.value)


def test_missing_mapping_file_is_a_mapping_error(tmp_path):
    with pytest.raises(MappingError, match="cannot read mapping file"):
        load_mapping_file(tmp_path / "absent.yaml", COLUMNS, REGISTRY)


def source_rows(**columns):
    return pl.DataFrame(columns, schema={name: pl.Utf8 for name in columns})


def test_apply_mapping_shape_and_blank_cells():
    rows = source_rows(Phone=[" 415 555 0134 ", ""], Vorname=["Ann", "  "], Notes=["x", "y"])
    mapping = auto_map(rows.columns, REGISTRY)
    mapped = apply_mapping(rows, mapping, REGISTRY)
    assert mapped.columns == ["row_number", *STANDARD_FIELDS, "custom_fields"]
    assert mapped.schema["row_number"] == pl.Int64
    assert all(mapped.schema[name] == pl.Utf8 for name in [*STANDARD_FIELDS, "custom_fields"])
    assert mapped.get_column("row_number").to_list() == [2, 3]
    assert mapped.get_column("phone").to_list() == ["415 555 0134", None]
    assert mapped.get_column("first_name").to_list() == ["Ann", None]
    assert mapped.get_column("email").to_list() == [None, None]
    assert mapped.get_column("custom_fields").to_list() == ["{}", "{}"]


def test_apply_mapping_keeps_the_reader_row_numbers():
    rows = source_rows(Phone=["1"]).with_columns(pl.lit(7, pl.Int64).alias("row_number"))
    assert apply_mapping(rows, auto_map(["Phone"], REGISTRY), REGISTRY)["row_number"].to_list() == [7]


def test_custom_fields_are_typed_and_misfits_kept_as_text():
    rows = source_rows(
        Phone=["1", "2", "3"],
        plan_tier=['Pro "Plus"', None, "Basic"],
        renewal_date=["2025-01-31", "31/01/2025", "2025-02-01T10:00:00Z"],
        lifetime_value=["$1,200.50", "12,5", "lots"],
        seats=["42", "42.0", "4.5"],
        vip=["yes", "Nein", "maybe"],
    )
    mapped = apply_mapping(rows, auto_map(rows.columns, REGISTRY), REGISTRY)
    assert [json.loads(text) for text in mapped["custom_fields"]] == [
        {"plan_tier": 'Pro "Plus"', "renewal_date": "2025-01-31", "lifetime_value": 1200.5, "seats": 42, "vip": True},
        {"plan_tier": None, "renewal_date": "31/01/2025", "lifetime_value": 12.5, "seats": 42, "vip": False},
        {"plan_tier": "Basic", "renewal_date": "2025-02-01", "lifetime_value": "lots", "seats": "4.5", "vip": "maybe"},
    ]


@given(st.lists(st.text().map(str.strip), min_size=1, max_size=20))
def test_custom_fields_json_is_always_valid(values):
    rows = source_rows(Phone=["1"] * len(values), plan_tier=values, lifetime_value=values, renewal_date=values)
    mapped = apply_mapping(rows, auto_map(rows.columns, REGISTRY), REGISTRY)
    decoded = [json.loads(text) for text in mapped["custom_fields"]]
    assert [row["plan_tier"] for row in decoded] == [v or None for v in values]


def test_apply_mapping_refuses_a_mapping_for_other_columns():
    mapping = Mapping(fields={"Telephone": "phone"}, unmapped=[], source="file", scores={})
    with pytest.raises(MappingError, match="'Telephone'"):
        apply_mapping(source_rows(Phone=["1"]), mapping, REGISTRY)


def test_column_drift():
    previous = ["Phone Number", "First Name", "Email", "Plan", "Fax"]
    current = ["Mobile", "First Name", "E-mail Address", "Plan", "Region", "Segment"]
    drift = column_drift(previous, current)
    assert drift.renamed == [("Phone Number", "Mobile"), ("Email", "E-mail Address")]
    assert drift.added == ["Region", "Segment"]
    assert drift.missing == ["Fax"]
    assert drift.changed


def test_column_drift_close_names_count_as_renames():
    drift = column_drift(["Account Manager"], ["Account Manager Name"])
    assert drift == ColumnDrift(renamed=[("Account Manager", "Account Manager Name")])


def test_no_drift():
    assert not column_drift(["A", "B"], ["B", "A"]).changed
    assert not column_drift(None, ["A"]).changed


# --- CRM export headers, several phone columns, invisible characters, drift that unmaps a field ---------------


def test_hubspot_and_salesforce_headers_are_recognized():
    hubspot = ["First Name", "Last Name", "Phone Number", "Mobile Phone Number", "State/Region", "Postal Code"]
    mapping = auto_map(hubspot, REGISTRY)
    assert mapping.fields == {
        "First Name": "first_name",
        "Last Name": "last_name",
        "Phone Number": "phone",
        "Mobile Phone Number": "phone",
        "State/Region": "state",
        "Postal Code": "postal_code",
    }
    assert mapping.phone_columns == ["Phone Number", "Mobile Phone Number"]
    salesforce = ["First Name", "Mobile", "Mailing Street", "Mailing City", "Mailing State/Province",
                  "Mailing Zip/Postal Code", "Mailing Country"]  # fmt: skip
    mapping = auto_map(salesforce, REGISTRY)
    assert mapping.fields == {
        "First Name": "first_name",
        "Mobile": "phone",
        "Mailing State/Province": "state",
        "Mailing Zip/Postal Code": "postal_code",
        "Mailing Country": "country",
    }
    assert mapping.unmapped == ["Mailing Street", "Mailing City"]  # no street field: never guessed into `state`


def test_mapping_file_names_several_phone_columns_in_priority_order(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text('columns:\n  phone: ["Mobile Phone Number", "Phone Number"]\n  First Name: first_name\n')
    columns = ["First Name", "Phone Number", "Mobile Phone Number"]
    mapping = load_mapping_file(path, columns, REGISTRY)
    assert mapping.phone_columns == ["Mobile Phone Number", "Phone Number"]
    assert source_columns(mapping)["phone"] == "Mobile Phone Number"
    assert Mapping.from_json(mapping.to_json()).phone_columns == mapping.phone_columns
    rows = pl.DataFrame(
        {"First Name": ["Ann", "Bob"], "Phone Number": ["111", " "], "Mobile Phone Number": [None, "222"]}
    )
    mapped = apply_mapping(rows, mapping, REGISTRY)
    assert mapped["phone"].to_list() == [None, "222"]
    assert mapped["phone_alternates"].to_list() == [["111"], []]


def test_invisible_and_bidi_characters_are_stripped_and_invisible_only_values_are_blank():
    rows = pl.DataFrame(
        {
            "First Name": ["\u200b\u200d\u2060", "\u202eAnn\u202c", "\u2066Bob\u2069 ", "\u200d\u200c", "क्\u200dष"],
            "Phone": ["4155550134"] * 5,
        }
    )
    mapped = apply_mapping(rows, auto_map(rows.columns, REGISTRY), REGISTRY)
    assert mapped["first_name"].to_list() == [None, "Ann", "Bob", None, "क्\u200dष"]  # joiners inside a word stay


def test_drift_that_leaves_a_previously_mapped_field_unmapped_blocks():
    previous = ["Phone", "Name", "State"]
    remembered = auto_map(previous, REGISTRY)
    now = ["Phone", "Name", "Territory"]  # the state column was renamed to something no alias matches
    mapping = auto_map(now, REGISTRY, remembered=remembered)
    lost = lost_fields(remembered, mapping, previous)
    assert lost == [("state", "State")]
    drift = column_drift(previous, now)
    drift.unmapped_fields = lost
    reason = drift.blocking_reason()
    assert reason and "state (was column 'State')" in reason and "--mapping" in reason
    # a rename to a known alias keeps the field mapped; added columns are only reported
    renamed = auto_map(["Phone", "Name", "Province", "Notes"], REGISTRY, remembered=remembered)
    assert lost_fields(remembered, renamed, previous) == []
    assert lost_fields(None, mapping, previous) == [] and lost_fields(remembered, mapping, None) == []


def test_messages_cut_long_column_names(tmp_path):
    long_name = "X" * 5000
    path = tmp_path / "m.yaml"
    path.write_text(f"columns:\n  ? {long_name}\n  : phone\n")  # explicit key: YAML limits implicit ones
    with pytest.raises(MappingError) as error:
        load_mapping_file(path, ["Phone"], REGISTRY)
    assert len(str(error.value)) < 200 and "…" in str(error.value)

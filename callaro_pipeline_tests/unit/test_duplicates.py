import json

import polars as pl
import pytest

from callaro_pipeline.core.applying_mapping import apply_mapping
from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.duplicates import apply_duplicate_policy
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.header_matching import auto_map
from callaro_pipeline.core.mapping import source_columns
from callaro_pipeline.core.problems import PROBLEM_SCHEMA
from callaro_pipeline.core.validation import validate_contacts

REGISTRY = {
    "plan_tier": CustomField("plan_tier", "string", "sales-ops", "plan"),
    "lifetime_value": CustomField("lifetime_value", "number", "finance", "value"),
}
PHONE_A, PHONE_B, PHONE_C, PHONE_D = "4155550101", "4155550102", "4155550103", "4155550104"


def validated(**columns):
    """Validated rows built the way the pipeline builds them; row 2 is the first data row."""
    rows = pl.DataFrame(columns, schema={name: pl.Utf8 for name in columns})
    mapping = auto_map(rows.columns, REGISTRY)
    result = validate_contacts(
        apply_mapping(rows, mapping, REGISTRY), source_columns=source_columns(mapping), registry=REGISTRY
    )
    assert result.problems.is_empty()
    return result.valid, source_columns(mapping)


def messages(result):
    return result.problems.select("row_number", "field", "message").rows()


@pytest.fixture
def same_phone():
    return validated(
        Phone=[PHONE_A, PHONE_B, f"+1 {PHONE_A}", PHONE_C, PHONE_A],
        First_Name=["Ann", "Bob", "Anne", "Cy", "Ann"],
        Company=[None, "Beta", "Acme", None, "Acme Inc"],
        Email=[None, None, "ann@acme-example.com", None, None],
        Consent=[None, "no", "yes", None, "no"],
        Plan_Tier=["basic", None, "pro", None, None],
        Lifetime_Value=[None, None, "10", None, "12.5"],
    )


def test_suppress_keeps_the_first_and_rejects_the_rest(same_phone):
    valid, columns = same_phone
    result = apply_duplicate_policy(valid, policy="suppress", source_columns=columns)
    assert result.kept["row_number"].to_list() == [2, 3, 5]
    assert result.kept.columns == valid.columns
    # row 6 (same phone, later) says no: the opt-out is not lost as a duplicate, it revokes
    assert result.kept.row(0, named=True) == {**valid.row(0, named=True), "consent": "no"}
    assert result.problems.schema == pl.Schema(PROBLEM_SCHEMA)
    assert result.problems.rows() == [
        (4, "Phone", "phone", "duplicate", "same phone as row 2", "+14155550101"),
        (6, "Phone", "phone", "duplicate", "same phone as row 2", "+14155550101"),
    ]
    assert result.split_rows.is_empty() and result.conflicts.is_empty() and result.skipped_existing == 0


def test_merge_folds_the_group_first_non_empty_value_wins(same_phone):
    valid, _ = same_phone
    result = apply_duplicate_policy(valid, policy="merge")
    assert result.kept["row_number"].to_list() == [2, 3, 5]
    merged = result.kept.row(0, named=True)
    assert merged["first_name"] == "Ann"
    assert merged["company"] == "Acme"  # row 2 had none; row 4's wins over row 6's
    assert merged["email"] == "ann@acme-example.com"
    assert merged["consent"] == "no"  # row 4's yes, revoked by row 6's later no
    assert json.loads(merged["custom_fields"]) == {"plan_tier": "basic", "lifetime_value": 10.0}
    assert result.kept.row(1, named=True) == valid.row(1, named=True)
    assert messages(result) == [(4, "phone", "merged into row 2"), (6, "phone", "merged into row 2")]


def test_merge_lists_conflicts_without_values(same_phone):
    valid, _ = same_phone
    conflicts = apply_duplicate_policy(valid, policy="merge").conflicts
    assert conflicts.columns == ["row_number", "field", "kept_row", "other_row"]
    assert sorted(conflicts.rows()) == [
        (2, "company", 4, 6),
        (2, "consent", 4, 6),
        (2, "custom.lifetime_value", 4, 6),
        (2, "custom.plan_tier", 2, 4),
        (2, "first_name", 2, 4),
    ]


def test_split_keeps_the_first_and_sets_the_rest_aside(same_phone):
    valid, _ = same_phone
    result = apply_duplicate_policy(valid, policy="split")
    assert result.kept["row_number"].to_list() == [2, 3, 5]
    assert result.split_rows["row_number"].to_list() == [4, 6]
    assert result.split_rows.columns == valid.columns
    assert messages(result) == [(4, "phone", "split to duplicates file"), (6, "phone", "split to duplicates file")]


def test_external_id_is_a_key_too():
    valid, _ = validated(Phone=[PHONE_A, PHONE_B, PHONE_C], External_ID=["C-1", "C-1", None], Name=["A", "B", "C"])
    result = apply_duplicate_policy(valid, policy="suppress")
    assert result.kept["row_number"].to_list() == [2, 4]
    assert result.problems.select("row_number", "field", "message", "value").rows() == [
        (3, "external_id", "same external_id as row 2", "C-1")
    ]


def test_rows_without_external_id_are_not_linked_through_it():
    valid, _ = validated(Phone=[PHONE_A, PHONE_B], Name=["A", "B"], External_ID=[None, ""])
    assert apply_duplicate_policy(valid, policy="suppress").kept.height == 2


def test_links_are_transitive():
    # row 4 shares a phone with row 3, which shares an external id with row 2: one person, one contact
    valid, _ = validated(Phone=[PHONE_A, PHONE_B, PHONE_B], External_ID=["C-1", "C-1", None], Name=["A", "B", "C"])
    result = apply_duplicate_policy(valid, policy="merge")
    assert result.kept["row_number"].to_list() == [2]
    assert result.kept["phone_e164"].to_list() == ["+14155550101"]
    assert messages(result) == [(3, "external_id", "merged into row 2"), (4, "phone", "merged into row 2")]
    assert ("phone_e164", 2, 3) in [row[1:] for row in result.conflicts.rows()]


@pytest.mark.parametrize("policy", ["suppress", "merge", "split"])
def test_corrected_subset_reimport_adds_only_what_is_new(policy):
    valid, columns = validated(
        Phone=[PHONE_A, PHONE_B, PHONE_C, PHONE_D], External_ID=[None, None, "C-9", None], Name=["A", "B", "C", "D"]
    )
    existing = pl.DataFrame(
        {"phone_e164": ["+14155550101", "+14155559999"], "external_id": [None, "C-9"], "upload_id": ["u-1", "u-2"]}
    )
    result = apply_duplicate_policy(valid, policy=policy, existing=existing, source_columns=columns)
    assert result.kept["row_number"].to_list() == [3, 5]
    assert result.skipped_existing == 2
    assert result.problems.rows() == [
        (2, "Phone", "phone", "duplicate", "already in this campaign (upload u-1)", "+14155550101"),
        (4, "External_ID", "external_id", "duplicate", "already in this campaign (upload u-2)", "C-9"),
    ]
    assert result.split_rows.is_empty()


def test_empty_existing_and_empty_input():
    valid, _ = validated(Phone=[PHONE_A], Name=["A"])
    empty_existing = pl.DataFrame(schema={"phone_e164": pl.Utf8, "external_id": pl.Utf8, "upload_id": pl.Utf8})
    assert apply_duplicate_policy(valid, policy="suppress", existing=empty_existing).kept.height == 1
    for policy in ("suppress", "merge", "split"):
        result = apply_duplicate_policy(valid.clear(), policy=policy, existing=empty_existing)
        assert result.kept.is_empty() and result.problems.is_empty()


def test_unknown_policy():
    valid, _ = validated(Phone=[PHONE_A], Name=["A"])
    with pytest.raises(ConfigError, match="unknown duplicate policy 'drop'"):
        apply_duplicate_policy(valid, policy="drop")


# --- extensions: one switchboard number, several people -------------------------------------------------------


@pytest.mark.parametrize("policy", ["suppress", "merge", "split"])
def test_rows_that_differ_only_by_extension_are_not_duplicates(policy):
    valid, columns = validated(
        Phone=[f"{PHONE_A} ext. 12", f"{PHONE_A} x34", PHONE_A, f"{PHONE_A} ext 12"],
        First_Name=["Ann", "Bob", "Reception", "Anne"],
    )
    result = apply_duplicate_policy(valid, policy=policy, source_columns=columns)
    # three people behind one number: extension 12, extension 34, the main line; row 5 repeats extension 12
    assert result.kept["row_number"].to_list() == [2, 3, 4]
    assert result.kept["phone_extension"].to_list() == ["12", "34", None]
    assert result.problems.select("row_number", "code").rows() == [(5, "duplicate")]


def test_a_contact_already_in_the_campaign_is_matched_with_its_extension():
    valid, columns = validated(Phone=[f"{PHONE_A} ext. 12", f"{PHONE_A} x34", PHONE_A], First_Name=["Ann", "Bob", "Cy"])
    existing = pl.DataFrame(
        {"phone_e164": ["+14155550101"], "phone_extension": ["34"], "external_id": [None], "upload_id": ["u0"]},
        schema={"phone_e164": pl.Utf8, "phone_extension": pl.Utf8, "external_id": pl.Utf8, "upload_id": pl.Utf8},
    )
    result = apply_duplicate_policy(valid, policy="suppress", existing=existing, source_columns=columns)
    assert result.kept["row_number"].to_list() == [2, 4]
    assert result.skipped_existing == 1
    assert result.problems.select("row_number", "message").rows() == [(3, "already in this campaign (upload u0)")]

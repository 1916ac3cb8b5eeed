"""The field registry (callaro_pipeline/core/schema.py) is the one definition of a contact's fields: the code derives
from it, and what it cannot derive (the SQL DDL, the dbt column docs) is checked against it here."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
import yaml

from callaro_pipeline.core import (
    applying_mapping,
    config,
    duplicates,
    field_checks,
    filter_parser,
    gates,
    gx_gate,
    gx_suite,
    header_matching,
    pandera_gate,
    privacy,
    problems,
    schema,
    validation,
)
from callaro_pipeline.core import contact_book as book_rules
from callaro_pipeline.storage import contact_book
from callaro_pipeline.storage.warehouse import Warehouse

DBT = Path(__file__).resolve().parents[2] / "dbt_contacts"
TABLES = ("mapped_contacts", "validated_contacts", "contacts")


@pytest.fixture(scope="module")
def live_columns(tmp_path_factory) -> dict[str, list[tuple[str, str, str]]]:
    """(name, type, null) of every column of the contact tables in a warehouse created as the pipeline does."""
    home = tmp_path_factory.mktemp("home")
    with Warehouse(home=str(home)).connect() as con:
        return {
            table: [(row[0], row[1], row[2]) for row in con.execute(f"DESCRIBE {table}").fetchall()]  # noqa: S608
            for table in TABLES
        }


@pytest.mark.parametrize("table", TABLES)
def test_the_live_tables_have_the_registry_columns_with_their_types(live_columns, table):
    live = {name: kind for name, kind, _ in live_columns[table] if name != "upload_id"}
    expected = {f.name: f.duckdb_type for f in schema.fields(table=table)}
    assert live == expected


@pytest.mark.parametrize("table", TABLES)
def test_a_column_the_ddl_declares_not_null_is_never_empty_in_the_registry(live_columns, table):
    not_null = {name for name, _, null in live_columns[table] if null == "NO" and name != "upload_id"}
    assert not_null <= {f.name for f in schema.fields(table=table, nullable=False)}


def test_validated_contacts_come_in_the_column_order_of_the_table(live_columns):
    live = [name for name, _, _ in live_columns["validated_contacts"] if name != "upload_id"]
    assert live == list(schema.VALIDATED_COLUMNS) == list(validation.VALIDATED_COLUMNS)


def test_every_field_is_described_and_named_once():
    assert len(schema.BY_NAME) == len(schema.FIELDS)
    assert all(f.description.strip() and f.tables for f in schema.FIELDS)
    assert all(f.unit in schema.BY_NAME for f in schema.FIELDS if f.merge == "unit")
    assert set(schema.EDITABLE_FIELDS) <= set(schema.STANDARD_FIELDS)


# --- what derives from the registry ----------------------------------------------------------------------


def test_the_standard_fields_are_the_products_and_one_tuple_everywhere():
    product = (
        "external_id first_name last_name full_name company phone email timezone country state postal_code "
        "lead_source consent consent_date consent_source"
    ).split()
    assert sorted(schema.STANDARD_FIELDS) == sorted(product)
    assert schema.STANDARD_FIELDS is header_matching.STANDARD_FIELDS is applying_mapping.STANDARD_FIELDS


def test_the_pandera_schema_is_generated_from_the_registry():
    generated = pandera_gate.validated_contacts_schema()
    gated = schema.fields(table="validated_contacts", gated=True)
    assert list(generated.columns) == [f.name for f in gated]
    for f in gated:
        column = generated.columns[f.name]
        assert column.dtype.type == schema.polars_dtype(f), f.name
        assert (column.nullable, column.unique) == (f.nullable, f.unique), f.name
        assert [check.error for check in column.checks] == ([f.rule] if f.rule else []), f.name
    assert list(generated.unique) == list(schema.CONTACT_KEY) == ["phone_e164", "phone_extension"]


def test_the_great_expectations_suite_asks_for_every_required_and_an_identity_field():
    suite = gx_suite.gx_runner().context.suites.get(gates.GX_SUITE_NAME)
    rules = {e.meta[gates.RULE_KEY]: e for e in suite.expectations}
    assert schema.REQUIRED_FIELDS == ("phone",)
    for name in schema.REQUIRED_FIELDS:
        assert rules[f"{name}_mapped"].column == f"mapped__{name}"
    assert "identity_mapped" in rules
    summary = gx_gate.upload_summary(10, 0, ["phone", "email"])
    assert summary["identity_fields_mapped"] == [0]
    assert gx_gate.upload_summary(10, 0, ["phone", *schema.IDENTITY_FIELDS[:1]])["identity_fields_mapped"] == [1]


def test_validation_field_rules_come_from_the_registry():
    assert problems.FIELD_MAX_LENGTHS == {f.name: f.max_length for f in schema.FIELDS if f.max_length}
    assert set(problems.FIELD_MAX_LENGTHS) == set(schema.STANDARD_FIELDS)
    assert validation.NAME_FIELDS == gx_gate.IDENTITY_FIELDS == ("first_name", "last_name", "full_name", "external_id")
    assert set(field_checks.TEXT_FIELDS) <= set(schema.STANDARD_FIELDS)


def test_the_contact_book_merges_and_edits_what_the_registry_says():
    assert contact_book.EDITABLE_FIELDS == schema.EDITABLE_FIELDS
    assert "phone" not in contact_book.EDITABLE_FIELDS and "phone_e164" not in contact_book.EDITABLE_FIELDS
    assert book_rules.FIELD_GROUPS == {
        "consent": ("consent", "consent_date", "consent_source"),
        "timezone": ("timezone", "timezone_candidates", "timezone_source"),
    }
    merged = set(book_rules.SINGLE_FIELDS) | {n for g in book_rules.FIELD_GROUPS.values() for n in g}
    # every validated column of the book is merged by a rule: a value, a group, the key, or its own SQL
    assert merged | {"row_number", "phone_e164", "custom_fields", "other_phones_e164"} == set(schema.VALIDATED_COLUMNS)
    assert list(book_rules.INCOMING_SCHEMA) == list(schema.VALIDATED_COLUMNS)
    assert set(contact_book.FILTERABLE_FIELDS) <= set(schema.BOOK_COLUMNS)


def test_duplicates_merge_the_registry_units():
    assert duplicates.MERGE_UNITS == schema.merge_units()
    assert duplicates.MERGE_UNITS["phone_e164"] == (
        "phone_e164",
        "phone_extension",
        "phone_type",
        "phone_region",
        "phone_state",
    )


def test_filters_and_privacy_read_the_registry():
    assert set(filter_parser.CONTACT_FIELDS) - {"email_domain"} <= set(schema.BOOK_COLUMNS)
    assert filter_parser.CONTACT_FIELDS["consent_date"] == ("try_cast(c.consent_date AS DATE)", "date")
    assert set(privacy.PII_FIELDS_TEXT) | set(privacy.PII_FIELDS_EMAIL) | set(privacy.PII_FIELDS_PHONE) >= {
        f.name for f in schema.FIELDS if f.pii and f.type == "text"
    }


def test_a_mapped_frame_has_the_registry_columns_of_the_mapped_stage():
    registry = config.load_custom_fields()
    rows = pl.DataFrame({"Phone": ["(415) 555-0134"], "Name": ["Ann Lee"]})
    mapped = applying_mapping.apply_mapping(rows, header_matching.auto_map(rows.columns, registry), registry)
    assert set(mapped.columns) <= {f.name for f in schema.fields(table="mapped_contacts")}


# --- dbt column docs ----------------------------------------------------------------------------------------


def _yml_columns() -> list[tuple[str, str, str]]:
    """(file, column name, description) of every documented column of the dbt models and sources."""
    found = []
    for path in sorted(DBT.glob("models/**/*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for node in [*(document.get("models") or []), *(t for s in document.get("sources") or [] for t in s["tables"])]:
            for column in node.get("columns") or []:
                found.append((f"{path.name}:{node['name']}", column["name"], column.get("description", "")))
    return found


def test_the_dbt_doc_blocks_are_generated_from_the_registry():
    generated = (DBT / schema.DBT_DOCS_PATH).read_text(encoding="utf-8")
    assert generated == schema.dbt_docs_markdown(), "run: python -m callaro_pipeline.core.schema > " + str(
        Path("dbt_contacts") / schema.DBT_DOCS_PATH
    )
    blocks = re.findall(r"{%\s*docs\s+(\w+)\s*%}", "".join(p.read_text() for p in DBT.rglob("*.md")))
    assert sorted(blocks) == sorted(schema.dbt_doc_name(f.name) for f in schema.FIELDS)  # each once


def _describes_contacts(node: str) -> bool:
    """The contact book (source), its staging view, and the segments (which return its columns)."""
    model = node.split(":")[1]
    return model in ("contacts", "stg_contacts") or model.startswith("seg_")


def test_every_registry_column_in_the_dbt_yml_uses_the_registry_doc():
    columns = [column for column in _yml_columns() if _describes_contacts(column[0])]
    assert len({node for node, _, _ in columns}) >= 3
    for node, name, description in columns:
        if name in schema.BY_NAME:
            assert description == schema.dbt_doc_reference(name), f"{node}.{name}"
        else:
            assert "doc(" not in description, f"{node}.{name}"


def test_every_column_of_stg_contacts_is_documented():
    sql = (DBT / "models/staging/stg_contacts.sql").read_text(encoding="utf-8")
    body = re.search(r"select(.*?)from", re.sub(r"--.*", "", sql), re.S | re.I).group(1)
    selected = [re.split(r"\s+as\s+", item.strip(), flags=re.I)[-1] for item in body.split(",\n")]
    documented = [name for node, name, _ in _yml_columns() if node == "_staging.yml:stg_contacts"]
    assert selected == documented
    assert set(selected) - {"email_domain"} <= set(schema.BOOK_COLUMNS)

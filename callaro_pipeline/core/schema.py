"""The one registry of contact fields: every column a contact has on its way from a mapped upload row to the
contact book, with its type, whether it is PII, whether `callaro contacts update` may set it, how duplicates
merge it, and its description. Pure (no Dagster, no DuckDB, no Pandera): other modules derive from it.

Derived from here: the standard mapping fields (STANDARD_FIELDS), the validated columns and the field
rules of validation, the Pandera schema and the GX suite of the gates, the contact book's merge groups and
editable/filterable fields, the duplicate merge units, the filter language's contact fields, the masked PII
columns, and the dbt column docs (`dbt_contacts/models/_contact_fields.md`, written by `dbt_docs_markdown`).
Checked against it in callaro_pipeline_tests/test_schema_registry.py: the live warehouse tables (the SQL DDL)
and the dbt column docs.

Field order is the column order of the validated_contacts table (the fields of other stages where they fit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

FieldType = Literal["text", "integer", "text_list", "json", "timestamp"]
Table = Literal["mapped_contacts", "validated_contacts", "contacts"]
PiiKind = Literal["phone", "email", "name"]
# How duplicates of one upload are merged (duplicates.apply_duplicate_policy, policy merge):
#   first_non_empty: the first row with a value wins, field by field;
#   unit: taken together with its unit (`unit` names the unit's lead field) from the first row whose lead is set;
#   per_key: a JSON object merged key by key (custom fields);
#   never: the row's own bookkeeping (row_number), not merged.
MergeRule = Literal["first_non_empty", "unit", "per_key", "never"]
# What the filter language compares a field as (None: not filterable).
FilterType = Literal["text", "date", "timestamp"]

MAPPED: frozenset[Table] = frozenset({"mapped_contacts"})
VALIDATED: frozenset[Table] = frozenset({"validated_contacts", "contacts"})
EVERY_STAGE: frozenset[Table] = frozenset({"mapped_contacts", "validated_contacts", "contacts"})
BOOK: frozenset[Table] = frozenset({"contacts"})

# The storage type of each field type: DuckDB (the DDL) and polars (the frames between the stages).
DUCKDB_TYPES: dict[FieldType, str] = {
    "text": "VARCHAR",
    "integer": "BIGINT",
    "text_list": "VARCHAR[]",
    "json": "JSON",
    "timestamp": "TIMESTAMP",
}


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    description: str
    tables: frozenset[Table]
    """the warehouse tables that have this column (validated_contacts and the mapped stage without upload_id)"""
    standard: bool = False
    """a standard field: a source column can be mapped to it (the mapping's targets)"""
    pii: PiiKind | None = None
    """personal data, masked as this kind wherever it is shown (privacy.mask_frame)"""
    editable: bool = False
    """`callaro contacts update --set` may change it"""
    merge: MergeRule = "first_non_empty"
    unit: str | None = None
    """merge "unit": the lead field of the values that only make sense together"""
    nullable: bool = True
    """may be empty in a validated contact"""
    rule: str | None = None
    """the Pandera check of a validated contact (gates.PANDERA_RULES), by its error name"""
    unique: bool = False
    """unique among an upload's validated contacts"""
    contact_key: bool = False
    """part of the duplicate key of validated contacts (phone plus extension)"""
    gated: bool = True
    """a column of the Pandera schema of validated contacts (when validated)"""
    required: bool = False
    """an upload must map a column to it (GX rule `<name>_mapped`)"""
    identity: bool = False
    """one of the fields of which a row needs at least one (a name or an external id)"""
    max_length: int | None = None
    """longest accepted value in characters (validation: `value_too_long`)"""
    free_text: bool = False
    """free text checked for double-encoded UTF-8 (validation: `garbled_text`)"""
    filter_as: FilterType | None = None
    """how the filter language (`--where`) compares it; None: not filterable"""

    @property
    def validated(self) -> bool:
        return "validated_contacts" in self.tables

    @property
    def in_book(self) -> bool:
        return "contacts" in self.tables

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.type]


def _text(name: str, description: str, **options: object) -> Field:
    """A text field of every stage that a source column can be mapped to (most standard fields)."""
    settings: dict[str, object] = {"tables": EVERY_STAGE, "standard": True, "filter_as": "text", **options}
    return Field(name, "text", description, **settings)  # type: ignore[arg-type]


def _phone_detail(name: str, description: str) -> Field:
    """A value read from the phone number: validated and kept in the book, merged with the phone."""
    return Field(name, "text", description, VALIDATED, merge="unit", unit="phone_e164", filter_as="text")


FIELDS: tuple[Field, ...] = (
    Field(
        "contact_id",
        "text",
        "Stable id derived from the E.164 phone number (and the extension, when there is one); the key segments "
        "and audiences use.",
        BOOK,
        nullable=False,
        filter_as="text",
    ),
    Field(
        "row_number",
        "integer",
        "Row number of the source row as a spreadsheet shows it (header = row 1).",
        frozenset({"mapped_contacts", "validated_contacts"}),
        merge="never",
        nullable=False,
        rule="row_number_after_header",
        unique=True,
    ),
    Field(
        "phone",
        "text",
        "The phone number as uploaded (mapping: one or several source columns, the first valid one wins).",
        MAPPED,
        standard=True,
        pii="phone",
        required=True,
        max_length=100,
    ),
    Field(
        "phone_e164",
        "text",
        "Phone number in E.164 format (PII).",
        VALIDATED,
        pii="phone",
        merge="unit",
        unit="phone_e164",
        nullable=False,
        rule="e164_format",
        contact_key=True,
        filter_as="text",
    ),
    Field(
        "phone_extension",
        "text",
        "Extension dialled after the number, if any.",
        VALIDATED,
        merge="unit",
        unit="phone_e164",
        contact_key=True,
        filter_as="text",
    ),
    _phone_detail("phone_type", "Line type from libphonenumber, lowercase (mobile, fixed_line, voip, ...)."),
    _phone_detail("phone_region", "ISO country code of the number (US, CA, GB, ...)."),
    _phone_detail("phone_state", "US/CA state or province derived from the area code, when known."),
    _text("external_id", "The customer's own id for the contact (e.g. CRM id).", editable=True, identity=True,
          max_length=200),
    _text("first_name", "First name (PII).", pii="name", editable=True, identity=True, max_length=200,
          free_text=True),
    _text("last_name", "Last name (PII).", pii="name", editable=True, identity=True, max_length=200,
          free_text=True),
    _text("full_name", "Full name as uploaded or composed (PII).", pii="name", editable=True, identity=True,
          max_length=200, free_text=True),
    _text("company", "Company or account name.", editable=True, max_length=300, free_text=True),
    _text("email", "E-mail address (PII).", pii="email", editable=True, max_length=254),
    _text("country", "Country of the contact's address.", editable=True, max_length=100),
    _text("state", "State or region of the contact's address.", editable=True, max_length=100, free_text=True),
    _text("postal_code", "Postal / ZIP code.", editable=True, max_length=20),
    _text("lead_source", "Where the lead came from (webinar, referral, ...), as uploaded.", editable=True,
          max_length=200, free_text=True),
    _text("consent", "Consent status: yes, no or unknown.", editable=True, merge="unit", unit="consent",
          nullable=False, rule="consent_value", max_length=50),
    _text("consent_date", "When consent was given, as uploaded (a real date, not in the future).", editable=True,
          merge="unit", unit="consent", max_length=50, filter_as="date"),
    _text("consent_source", "Where consent was given.", editable=True, merge="unit", unit="consent",
          max_length=300, free_text=True),
    _text("timezone", "IANA time zone used for calling windows (e.g. America/New_York).", editable=True,
          merge="unit", unit="timezone", rule="iana_timezone", max_length=64),
    Field(
        "timezone_candidates",
        "text_list",
        "All time zones the contact could be in, when the evidence disagrees.",
        VALIDATED,
        merge="unit",
        unit="timezone",
    ),
    Field(
        "timezone_source",
        "text",
        "How `timezone` was decided (provided, phone, state, postal_code, combined, ambiguous, conflict, ...).",
        VALIDATED,
        merge="unit",
        unit="timezone",
        nullable=False,
        rule="timezone_source_value",
        filter_as="text",
    ),
    Field(
        "custom_fields",
        "json",
        "JSON object of the declared custom fields; read one with json_extract_string(custom_fields, '$.name').",
        EVERY_STAGE,
        merge="per_key",
    ),
    Field(
        "phone_alternates",
        "text_list",
        "The other phone columns' values of a row, in priority order (mapping `phone: [A, B]`).",
        MAPPED,
        pii="phone",
    ),
    Field(
        "other_phones_e164",
        "text_list",
        "The contact's other valid numbers (E.164) from further phone columns; scrubbed like the phone.",
        VALIDATED,
        pii="phone",
        gated=False,
    ),
    Field("first_upload_id", "text", "Upload that first created the contact.", BOOK, filter_as="text"),
    Field("last_upload_id", "text", "Upload that last changed the contact.", BOOK, filter_as="text"),
    Field("source_row", "integer", "Row number in the upload that first created the contact.", BOOK),
    Field("created_at", "timestamp", "When the contact entered the contact book (UTC).", BOOK,
          filter_as="timestamp"),
    Field("updated_at", "timestamp", "When the contact was last changed (UTC).", BOOK, filter_as="timestamp"),
)  # fmt: skip

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


def fields(*, table: Table | None = None, **having: object) -> tuple[Field, ...]:
    """The registry's fields (in registry order) of `table`, with every attribute given equal to its value."""
    return tuple(
        f
        for f in FIELDS
        if (table is None or table in f.tables) and all(getattr(f, key) == value for key, value in having.items())
    )


def names(selected: tuple[Field, ...]) -> tuple[str, ...]:
    return tuple(f.name for f in selected)


STANDARD_FIELDS: tuple[str, ...] = names(fields(standard=True))
VALIDATED_COLUMNS: tuple[str, ...] = names(fields(table="validated_contacts"))
BOOK_COLUMNS: tuple[str, ...] = names(fields(table="contacts"))
EDITABLE_FIELDS: tuple[str, ...] = names(fields(editable=True))
# the names first, then the external id ("a name or an external_id")
IDENTITY_FIELDS: tuple[str, ...] = names(tuple(sorted(fields(identity=True), key=lambda f: f.pii != "name")))
REQUIRED_FIELDS: tuple[str, ...] = names(fields(required=True))
CONTACT_KEY: tuple[str, ...] = names(fields(contact_key=True))
FIELD_MAX_LENGTHS: dict[str, int] = {f.name: f.max_length for f in FIELDS if f.max_length is not None}
FREE_TEXT_FIELDS: tuple[str, ...] = names(fields(free_text=True))


def polars_dtype(field: Field) -> Any:
    """The polars type of a field in the frames between the stages (JSON travels as text)."""
    import polars as pl  # imported here: the registry itself stays free of data libraries

    types = {"text": pl.Utf8(), "json": pl.Utf8(), "integer": pl.Int64(), "text_list": pl.List(pl.Utf8())}
    return types[field.type] if field.type in types else pl.Datetime("us")


def merge_units() -> dict[str, tuple[str, ...]]:
    """Lead field -> the fields merged with it as one unit, in registry order."""
    units: dict[str, tuple[str, ...]] = {}
    for f in fields(merge="unit"):
        units[f.unit or f.name] = (*units.get(f.unit or f.name, ()), f.name)
    return units


def pii_fields(kind: PiiKind) -> tuple[str, ...]:
    """Text columns holding PII of one kind (list columns are never shown)."""
    return names(fields(pii=kind, type="text"))


# --- dbt column docs ----------------------------------------------------------------------------------------

DBT_DOCS_PATH = "models/_contact_fields.md"  # under the dbt project
DBT_DOC_PREFIX = "contact_"


def dbt_doc_name(name: str) -> str:
    return f"{DBT_DOC_PREFIX}{name}"


def dbt_doc_reference(name: str) -> str:
    """What a dbt yml column description holds for a registry field."""
    return f'{{{{ doc("{dbt_doc_name(name)}") }}}}'


def dbt_docs_markdown() -> str:
    """The dbt doc blocks of every registry field (the text of DBT_DOCS_PATH; `python -m callaro_pipeline.core.schema`
    prints it)."""
    header = (
        "{# Generated from callaro_pipeline/core/schema.py (python -m callaro_pipeline.core.schema > "
        "dbt_contacts/models/_contact_fields.md); do not edit by hand. #}\n"
    )
    blocks = [f"{{% docs {dbt_doc_name(f.name)} %}}\n{f.description}\n{{% enddocs %}}\n" for f in FIELDS]
    return header + "\n".join(blocks)


if __name__ == "__main__":
    print(dbt_docs_markdown(), end="")

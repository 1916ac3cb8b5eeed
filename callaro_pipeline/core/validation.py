"""Row validation: mapped rows in, accepted contacts and one problem line per problem out.

Every check is a vectorized expression over the whole frame; library calls (phonenumbers, email-validator) run
once per distinct value and are joined back. A row with any problem is rejected as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH

from callaro_pipeline.core import schema
from callaro_pipeline.core.applying_mapping import FALSE_WORDS, TRUE_WORDS, typed_custom_value
from callaro_pipeline.core.config import CustomField, load_custom_fields
from callaro_pipeline.core.mapping import CUSTOM_PREFIX
from callaro_pipeline.core.phones import PHONE_COLUMNS, normalize_phones
from callaro_pipeline.core.timezones import resolve_timezones

PROBLEM_CODES = {
    "missing_required": "a required value is empty: the phone, or all of first_name, last_name, full_name and "
    "external_id (field `name`)",
    "invalid_phone": "the phone cannot be read as a valid number for its country or the default region "
    "(including spreadsheet damage such as 4.15556E+09)",
    "invalid_email": "the e-mail address is not syntactically valid (no network lookup is made)",
    "invalid_consent": "consent is not one of yes/no/unknown or a recognized synonym (y, true, 1, opt-in, ja, sí, "
    "oui / n, false, 0, opt-out, nein, non), or its consent_date is not a real date (n/a, unknown, 2026-02-30) or "
    "lies in the future",
    "invalid_custom_field": "a custom-field value does not fit the type declared in custom_fields.yaml",
    "duplicate": "the row repeats the phone or external_id of an earlier row or of a contact already in the "
    "campaign (handled by the campaign's duplicate policy)",
    "malformed_row": "the reader could not split the line into the header's columns (e.g. an unclosed quote)",
    "value_too_long": "a value is longer than its field allows (see FIELD_MAX_LENGTHS; custom fields "
    "CUSTOM_FIELD_MAX_LENGTH); the report shows its first 80 characters",
    "garbled_text": 'the text looks double-encoded (UTF-8 read as Windows-1252, e.g. "J\u00c3\u00bcrgen" for '
    '"J\u00fcrgen"): re-export the file as UTF-8',
}
# The validated_contacts columns (without upload_id), the longest value accepted per field in characters (a
# longer one is rejected as `value_too_long`): from the field registry.
VALIDATED_COLUMNS = schema.VALIDATED_COLUMNS
FIELD_MAX_LENGTHS = schema.FIELD_MAX_LENGTHS
CUSTOM_FIELD_MAX_LENGTH = 1000
SHOWN_VALUE_CHARS = 80  # a too-long value appears in the report cut to this, with an ellipsis
MAX_REPORT_VALUE_CHARS = 1000
MAX_MESSAGE_CHARS = 300
# Fields whose text is checked for mojibake (UTF-8 bytes decoded as Windows-1252 somewhere upstream).
TEXT_FIELDS = schema.FREE_TEXT_FIELDS
# A UTF-8 lead byte (Â Ã Ä Å) followed by a continuation byte as Windows-1252 shows it: "Ã¼" is "ü".
_MOJIBAKE = (
    "[\u00c2-\u00c5][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014"
    "\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)
PROBLEM_SCHEMA = pl.Schema(
    {
        "row_number": pl.Int64,
        "column": pl.Utf8,
        "field": pl.Utf8,
        "code": pl.Utf8,
        "message": pl.Utf8,
        "value": pl.Utf8,
    }
)
NAME_FIELDS = schema.IDENTITY_FIELDS
CONSENT_YES = (*TRUE_WORDS, "opt-in", "opt in", "optin", "opted in", "opted-in", "granted", "consented")
CONSENT_NO = (*FALSE_WORDS, "opt-out", "opt out", "optout", "opted out", "opted-out", "declined", "withdrawn")
# email-validator's DOT_ATOM_TEXT local part, one "@", then ASCII hostname characters (see _email_verdicts).
_EMAIL_ATEXT = r"A-Za-z0-9_!#$%&'*+/=?^`{|}~\-"
_SIMPLE_EMAIL = rf"^[{_EMAIL_ATEXT}]+(?:\.[{_EMAIL_ATEXT}]+)*@[A-Za-z0-9.\-]+$"
CUSTOM_TYPE_HINTS = {
    "integer": "not a whole number",
    "number": "not a number",
    "boolean": "not yes/no (true/false, yes/no, 1/0)",
    "date": "not a date: use YYYY-MM-DD",
}


@dataclass
class ValidationResult:
    valid: pl.DataFrame
    """one row per accepted source row, columns VALIDATED_COLUMNS (validated_contacts without upload_id)"""
    problems: pl.DataFrame
    """PROBLEM_SCHEMA: one line per problem, sorted by row_number"""
    rows_read: int


@dataclass(frozen=True)
class Check:
    """Rows where `failed` holds get one problem line."""

    field: str
    code: str
    failed: pl.Expr
    message: pl.Expr
    value: pl.Expr


def empty_problems() -> pl.DataFrame:
    return pl.DataFrame(schema=PROBLEM_SCHEMA)


def _email_verdicts(emails: pl.Series) -> pl.DataFrame:
    """email -> (normalized form, error message): exactly what email-validator says about each distinct address.

    email-validator costs ~0.15 ms an address (1M distinct addresses: minutes), almost all of it on the domain.
    For the usual shape (an ASCII dot-atom local part, one "@", an ASCII hostname) its verdict is a function of
    the domain alone: such a local part is valid and kept as is (RFC 2142 names like "Info" are lowercased, so
    they take the slow path), the domain is checked on its own, and the three length checks are recomputed
    here. So the library runs once per distinct domain of those; everything else, and every address whose
    domain it refuses (for its exact message), goes to `validate_email` whole, once per distinct address.
    """
    distinct = emails.drop_nulls().unique().rename("email").to_frame()
    parts = pl.col("email").str.splitn("@", 2)
    shaped = distinct.with_columns(
        simple=pl.col("email").str.contains(_SIMPLE_EMAIL).fill_null(False),
        local=parts.struct.field("field_0"),
        domain=parts.struct.field("field_1"),
    ).with_columns(
        simple=pl.col("simple") & ~pl.col("local").str.to_lowercase().is_in(list(CASE_INSENSITIVE_MAILBOX_NAMES))
    )
    domains = shaped.filter("simple").get_column("domain").unique().to_list()
    verdicts = [_domain_verdict(domain) for domain in domains]
    by_domain = pl.DataFrame(
        {
            "domain": domains,
            "domain_normalized": [v[0] for v in verdicts],
            "domain_ascii": [v[1] for v in verdicts],
        },
        schema={"domain": pl.Utf8, "domain_normalized": pl.Utf8, "domain_ascii": pl.Utf8},
    )
    normalized = pl.col("local") + "@" + pl.col("domain_normalized")
    fits = (
        (pl.col("email").str.len_bytes() <= EMAIL_MAX_LENGTH)
        & (normalized.str.len_bytes() <= EMAIL_MAX_LENGTH)
        & ((pl.col("local") + "@" + pl.col("domain_ascii")).str.len_bytes() <= EMAIL_MAX_LENGTH)
    )
    answered = (
        shaped.join(by_domain, on="domain", how="left")
        .with_columns(fast=(pl.col("simple") & pl.col("domain_normalized").is_not_null() & fits).fill_null(False))
        .with_columns(email_normalized=pl.when("fast").then(normalized))
    )
    fast = answered.filter("fast").select("email", "email_normalized", pl.lit(None, pl.Utf8).alias("email_error"))
    rest = answered.filter(~pl.col("fast")).get_column("email").to_list()
    normalized_rest: list[str | None] = []
    errors: list[str | None] = []
    for address in rest:
        try:
            normalized_rest.append(validate_email(address, check_deliverability=False).normalized)
            errors.append(None)
        except EmailNotValidError as exc:
            normalized_rest.append(None)
            errors.append(str(exc))
    slow = pl.DataFrame(
        {"email": rest, "email_normalized": normalized_rest, "email_error": errors},
        schema={"email": pl.Utf8, "email_normalized": pl.Utf8, "email_error": pl.Utf8},
    )
    return pl.concat([fast, slow])


def _domain_verdict(domain: str) -> tuple[str | None, str | None]:
    """(normalized domain, IDNA ASCII domain) as email-validator gives them, or (None, None) if it refuses it."""
    try:
        checked = validate_email("a@" + domain, check_deliverability=False)
    except EmailNotValidError:
        return None, None
    return checked.domain, checked.ascii_domain


def _consent(raw: pl.Expr) -> pl.Expr:
    """yes / no / unknown, or null for a value we cannot read (reported as invalid_consent)."""
    words = dict.fromkeys(CONSENT_YES, "yes") | dict.fromkeys(CONSENT_NO, "no") | {"unknown": "unknown"}
    word = raw.str.to_lowercase().str.replace_all(r"\s+", " ")
    return pl.when(raw.is_null()).then(pl.lit("unknown")).otherwise(word.replace_strict(words, default=None))


# Consent dates as written by CRMs and spreadsheets: ISO (with an optional time), US month/day/year, year/month/day.
_CONSENT_DATE_FORMATS = (
    (r"^(\d{4}-\d{2}-\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?$", "%Y-%m-%d"),
    (r"^(\d{1,2}/\d{1,2}/\d{4})(?:\s+\d{1,2}:\d{2}(?::\d{2})?(?:\s*[AaPp][Mm])?)?$", "%m/%d/%Y"),
    (r"^(\d{4}/\d{1,2}/\d{1,2})$", "%Y/%m/%d"),
)


def consent_date_value(raw: pl.Expr) -> pl.Expr:
    """The consent date as a Date, or null when the text is not a real date ("n/a", "unknown", 2026-02-30)."""
    text = raw.cast(pl.Utf8).str.strip_chars()
    return pl.coalesce(
        text.str.extract(pattern, 1).str.to_date(fmt, strict=False) for pattern, fmt in _CONSENT_DATE_FORMATS
    )


def _consent_date_problem(consent: pl.Expr, raw: pl.Expr, today: date) -> pl.Expr:
    """A consent date given that is not a real date, or lies in the future (`invalid_consent`). An opt-out
    needs no date: a "no" is never rejected for its date (that would lose the revocation)."""
    given = (raw.cast(pl.Utf8).str.strip_chars().str.len_chars() > 0).fill_null(False)
    parsed = consent_date_value(raw)
    bad = given & (parsed.is_null() | (parsed > today))
    return bad & (consent != "no").fill_null(True)


def _cut(text: pl.Expr, limit: int) -> pl.Expr:
    """Text cut to `limit` characters with an ellipsis, so no report line or message carries a huge value."""
    return pl.when(text.str.len_chars() > limit).then(text.str.slice(0, limit) + "\u2026").otherwise(text)


def _too_long(name: str, limit: int) -> pl.Expr:
    return (pl.col(name).str.len_chars() > limit).fill_null(False)


def _length_checks(registry: dict[str, CustomField], mapped_fields: set[str]) -> list[Check]:
    checks = [
        Check(
            name,
            "value_too_long",
            _too_long(name, limit),
            pl.format(f"{name} is {{}} characters long; at most {limit} are allowed", pl.col(name).str.len_chars()),
            _cut(pl.col(name), SHOWN_VALUE_CHARS),
        )
        for name, limit in FIELD_MAX_LENGTHS.items()
        if name in mapped_fields
    ]
    for name in registry:
        if CUSTOM_PREFIX + name not in mapped_fields:
            continue
        text = pl.col("custom_fields").str.json_path_match(f"$.{name}")
        checks.append(
            Check(
                CUSTOM_PREFIX + name,
                "value_too_long",
                (text.str.len_chars() > CUSTOM_FIELD_MAX_LENGTH).fill_null(False),
                pl.format(
                    f"{name} is {{}} characters long; at most {CUSTOM_FIELD_MAX_LENGTH} are allowed",
                    text.str.len_chars(),
                ),
                _cut(text, SHOWN_VALUE_CHARS),
            )
        )
    return checks


def _garbled_checks(mapped_fields: set[str]) -> list[Check]:
    return [
        Check(
            name,
            "garbled_text",
            pl.col(name).str.contains(_MOJIBAKE).fill_null(False) & ~_too_long(name, FIELD_MAX_LENGTHS[name]),
            pl.lit(
                f"{name} looks double-encoded (UTF-8 read as Windows-1252, e.g. \u00c3\u00bc for \u00fc): "
                "re-export the file as UTF-8"
            ),
            pl.col(name),
        )
        for name in TEXT_FIELDS
        if name in mapped_fields
    ]


def choose_phones(mapped: pl.DataFrame, default_region: str) -> pl.DataFrame:
    """normalize_phones' columns for each row, plus `phone` (the raw value chosen) and `other_phones_e164`.

    With several phone columns (`phone_alternates`, in priority order after `phone`) the first valid number is
    the phone and the other valid ones, deduplicated, are `other_phones_e164` (to be scrubbed like the phone).
    When none is valid the first non-blank value is judged (its problem is reported)."""
    if "phone_alternates" not in mapped.columns:
        answers = normalize_phones(mapped.get_column("phone"), default_region)
        return answers.with_columns(
            mapped.get_column("phone"), pl.lit(None, pl.List(pl.Utf8)).alias("other_phones_e164")
        )
    candidates = (
        mapped.select(
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"),
            pl.concat_list(pl.col("phone"), pl.col("phone_alternates").fill_null([])).alias("_raw"),
        )
        .explode("_raw")
        .with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).over("_row").alias("_position"))
    )
    answers = pl.concat(
        [candidates, normalize_phones(candidates.get_column("_raw"), default_region)], how="horizontal"
    ).with_columns(
        pl.col("phone_error").is_null().alias("_valid"),
        pl.col("_raw").is_not_null().alias("_given"),
    )
    # per row: the first valid candidate, else the first given one, else the first (the blank phone)
    rank = pl.when(pl.col("_valid")).then(0).when(pl.col("_given")).then(1).otherwise(2)
    chosen = (
        answers.with_columns(rank.alias("_rank"))
        .sort("_row", "_rank", "_position")
        .group_by("_row", maintain_order=True)
        .agg(
            pl.all().first(),
            pl.col("phone_e164").filter(pl.col("_valid")).unique(maintain_order=True).alias("_valid_numbers"),
        )
    )
    others = pl.col("_valid_numbers").list.set_difference(pl.concat_list(pl.col("phone_e164").fill_null("")))
    return chosen.sort("_row").select(
        *PHONE_COLUMNS,
        pl.col("_raw").alias("phone"),
        pl.when(others.list.len() > 0).then(others).otherwise(None).cast(pl.List(pl.Utf8)).alias("other_phones_e164"),
    )


def _custom_checks(registry: dict[str, CustomField], mapped_fields: set[str]) -> list[Check]:
    checks = []
    for name, spec in registry.items():
        if CUSTOM_PREFIX + name not in mapped_fields or spec.type == "string":
            continue
        text = pl.col("custom_fields").str.json_path_match(f"$.{name}")
        checks.append(
            Check(
                field=CUSTOM_PREFIX + name,
                code="invalid_custom_field",
                failed=text.is_not_null() & typed_custom_value(text, spec.type).is_null(),
                message=pl.lit(f"{name}: {CUSTOM_TYPE_HINTS[spec.type]}"),
                value=text,
            )
        )
    return checks


def _checks(source_columns: dict[str, str], registry: dict[str, CustomField]) -> list[Check]:
    name_missing = pl.all_horizontal(pl.col(name).is_null() for name in NAME_FIELDS)
    return [
        Check(
            "phone",
            "missing_required",
            pl.col("phone_error") == "missing_required",
            pl.col("phone_error_message"),
            pl.col("phone"),
        ),
        Check(
            "phone",
            "invalid_phone",
            pl.col("phone_error") == "invalid_phone",
            pl.col("phone_error_message"),
            pl.col("phone"),
        ),
        Check(
            "name",
            "missing_required",
            name_missing,
            pl.lit("a name (first_name, last_name or full_name) or an external_id is required"),
            pl.lit(None, pl.Utf8),
        ),
        Check(
            "email",
            "invalid_email",
            pl.col("email_error").is_not_null() & ~_too_long("email", FIELD_MAX_LENGTHS["email"]),
            pl.col("email_error"),
            pl.col("email"),
        ),
        # an unreadable time zone does not reject the row: it is kept with timezone_source "invalid" (no
        # candidates, never callable) or zoned from its other evidence, so it can be fixed later (contract)
        Check(
            "consent",
            "invalid_consent",
            pl.col("consent_normalized").is_null(),
            pl.lit("consent must be yes, no or unknown (or y/n, true/false, 1/0, opt-in/opt-out)"),
            pl.col("consent"),
        ),
        Check(
            "consent_date",
            "invalid_consent",
            pl.col("consent_date_problem"),
            pl.lit("consent_date must be a real date, not in the future (YYYY-MM-DD or MM/DD/YYYY)"),
            pl.col("consent_date"),
        ),
        *_custom_checks(registry, set(source_columns)),
        *_length_checks(registry, set(source_columns)),
        *_garbled_checks(set(source_columns)),
    ]


def _problem_lines(checked: pl.DataFrame, check: Check, source_columns: dict[str, str]) -> pl.DataFrame:
    if check.field == "name":
        column = ", ".join(source_columns[name] for name in NAME_FIELDS if name in source_columns) or None
    else:
        column = source_columns.get(check.field)
    return checked.filter(check.failed).select(
        pl.col("row_number"),
        pl.lit(column, pl.Utf8).alias("column"),
        pl.lit(check.field).alias("field"),
        pl.lit(check.code).alias("code"),
        _cut(check.message.cast(pl.Utf8), MAX_MESSAGE_CHARS).alias("message"),
        _cut(check.value.cast(pl.Utf8), MAX_REPORT_VALUE_CHARS).alias("value"),
    )


def _malformed_lines(malformed: pl.DataFrame) -> pl.DataFrame:
    return malformed.select(
        pl.col("row_number").cast(pl.Int64),
        pl.lit(None, pl.Utf8).alias("column"),
        pl.lit(None, pl.Utf8).alias("field"),
        pl.lit("malformed_row").alias("code"),
        pl.col("message").cast(pl.Utf8),
        pl.lit(None, pl.Utf8).alias("value"),
    )


def validate_contacts(
    mapped: pl.DataFrame,
    *,
    source_columns: dict[str, str],
    default_region: str = "US",
    registry: dict[str, CustomField] | None = None,
    malformed: pl.DataFrame | None = None,
    today: date | None = None,
) -> ValidationResult:
    """Check mapped rows (apply_mapping's output). `source_columns` (field -> source column) names the column
    of each problem; `registry` defaults to the configured custom-field registry; `malformed` holds the
    reader's unreadable lines (row_number, message)."""
    registry = load_custom_fields() if registry is None else registry
    phones = choose_phones(mapped, default_region)  # the first valid of several phone columns
    with_phones = pl.concat([mapped.drop("phone", "phone_alternates", strict=False), phones], how="horizontal")
    # the verdicts joined to the e-mail column alone: a join of the whole frame would copy every column
    emails = mapped.select("email").join(
        _email_verdicts(mapped.get_column("email")), on="email", how="left", maintain_order="left"
    )
    checked = resolve_timezones(with_phones.with_columns(pl.col("timezone").alias("timezone_given"))).with_columns(
        emails.get_column("email_normalized"),
        emails.get_column("email_error"),
        _consent(pl.col("consent")).alias("consent_normalized"),
    )
    today = today or datetime.now(UTC).date()
    checked = checked.with_columns(
        _consent_date_problem(pl.col("consent_normalized"), pl.col("consent_date"), today).alias(
            "consent_date_problem"
        ),
        consent_date_value(pl.col("consent_date")).dt.to_string("%Y-%m-%d").alias("consent_date_normalized"),
    )
    malformed = (
        malformed if malformed is not None else pl.DataFrame(schema={"row_number": pl.Int64, "message": pl.Utf8})
    )
    problems = pl.concat(
        [
            _malformed_lines(malformed),
            *(_problem_lines(checked, check, source_columns) for check in _checks(source_columns, registry)),
        ]
    ).sort("row_number", maintain_order=True)
    # columns chosen before the rows are filtered, and a frame already in row order is not sorted again: on a
    # million rows every full copy of the frame costs hundreds of MB of peak memory
    valid = (
        checked.with_columns(
            pl.col("email_normalized").alias("email"),
            pl.col("consent_normalized").alias("consent"),
            pl.col("consent_date_normalized").alias("consent_date"),
            pl.col("timezone_candidates").cast(pl.List(pl.Utf8)),
        )
        .select(VALIDATED_COLUMNS)
        .filter(~pl.col("row_number").is_in(problems.get_column("row_number").implode()))
    )
    if not valid.get_column("row_number").is_sorted():
        valid = valid.sort("row_number")
    rows_read = pl.concat([mapped.get_column("row_number"), malformed.get_column("row_number").cast(pl.Int64)])
    return ValidationResult(valid=valid, problems=problems, rows_read=rows_read.n_unique())

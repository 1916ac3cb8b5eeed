"""The checks of single fields: e-mail addresses, consent and its date, lengths, garbled text, typed custom fields."""

from __future__ import annotations

from datetime import date

import polars as pl
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH

from callaro_pipeline.core import schema
from callaro_pipeline.core.applying_mapping import FALSE_WORDS, TRUE_WORDS, typed_custom_value
from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.mapping import CUSTOM_PREFIX
from callaro_pipeline.core.problems import FIELD_MAX_LENGTHS, Check, cut_text

CUSTOM_FIELD_MAX_LENGTH = 1000
SHOWN_VALUE_CHARS = 80  # a too-long value appears in the report cut to this, with an ellipsis
# Fields whose text is checked for mojibake (UTF-8 bytes decoded as Windows-1252 somewhere upstream).
TEXT_FIELDS = schema.FREE_TEXT_FIELDS
# A UTF-8 lead byte (Â Ã Ä Å) followed by a continuation byte as Windows-1252 shows it: "Ã¼" is "ü".
_MOJIBAKE = (
    "[\u00c2-\u00c5][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014"
    "\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)
CONSENT_YES = (*TRUE_WORDS, "opt-in", "opt in", "optin", "opted in", "opted-in", "granted", "consented")
CONSENT_NO = (*FALSE_WORDS, "opt-out", "opt out", "optout", "opted out", "opted-out", "declined", "withdrawn")
# email-validator's DOT_ATOM_TEXT local part, one "@", then ASCII hostname characters (see email_verdicts).
_EMAIL_ATEXT = r"A-Za-z0-9_!#$%&'*+/=?^`{|}~\-"
_SIMPLE_EMAIL = rf"^[{_EMAIL_ATEXT}]+(?:\.[{_EMAIL_ATEXT}]+)*@[A-Za-z0-9.\-]+$"
CUSTOM_TYPE_HINTS = {
    "integer": "not a whole number",
    "number": "not a number",
    "boolean": "not yes/no (true/false, yes/no, 1/0)",
    "date": "not a date: use YYYY-MM-DD",
}


def email_verdicts(emails: pl.Series) -> pl.DataFrame:
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


def consent_answer(raw: pl.Expr) -> pl.Expr:
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


def consent_date_problem(consent: pl.Expr, raw: pl.Expr, today: date) -> pl.Expr:
    """A consent date given that is not a real date, or lies in the future (`invalid_consent`). An opt-out
    needs no date: a "no" is never rejected for its date (that would lose the revocation)."""
    given = (raw.cast(pl.Utf8).str.strip_chars().str.len_chars() > 0).fill_null(False)
    parsed = consent_date_value(raw)
    bad = given & (parsed.is_null() | (parsed > today))
    return bad & (consent != "no").fill_null(True)


def is_too_long(name: str, limit: int) -> pl.Expr:
    return (pl.col(name).str.len_chars() > limit).fill_null(False)


def length_checks(registry: dict[str, CustomField], mapped_fields: set[str]) -> list[Check]:
    checks = [
        Check(
            name,
            "value_too_long",
            is_too_long(name, limit),
            pl.format(f"{name} is {{}} characters long; at most {limit} are allowed", pl.col(name).str.len_chars()),
            cut_text(pl.col(name), SHOWN_VALUE_CHARS),
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
                cut_text(text, SHOWN_VALUE_CHARS),
            )
        )
    return checks


def garbled_text_checks(mapped_fields: set[str]) -> list[Check]:
    return [
        Check(
            name,
            "garbled_text",
            pl.col(name).str.contains(_MOJIBAKE).fill_null(False) & ~is_too_long(name, FIELD_MAX_LENGTHS[name]),
            pl.lit(
                f"{name} looks double-encoded (UTF-8 read as Windows-1252, e.g. \u00c3\u00bc for \u00fc): "
                "re-export the file as UTF-8"
            ),
            pl.col(name),
        )
        for name in TEXT_FIELDS
        if name in mapped_fields
    ]


def custom_field_checks(registry: dict[str, CustomField], mapped_fields: set[str]) -> list[Check]:
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

"""The filter language parsed: fields and their types, operators, tokens, and the conditions a `--where` text means."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from callaro_pipeline.core import schema
from callaro_pipeline.core.campaign_settings import CustomField
from callaro_pipeline.core.config import load_custom_fields
from callaro_pipeline.core.errors import ConfigError

# field name -> (SQL expression over the contacts alias `c`, value type). Expressions are code, never input.
# Every column here exists in both `main.contacts` and dbt's `staging.stg_contacts` (which a segment reads): the
# registry's contact-book fields that are filterable (schema.Field.filter_as), and `email_domain`.
_FILTER_SQL = {"text": "c.{name}", "timestamp": "c.{name}", "date": "try_cast(c.{name} AS DATE)"}
CONTACT_FIELDS: dict[str, tuple[str, str]] = {
    **{
        f.name: (_FILTER_SQL[f.filter_as].format(name=f.name), f.filter_as)
        for f in schema.fields(table="contacts")
        if f.filter_as is not None
    },
    "email_domain": ("nullif(lower(split_part(c.email, '@', 2)), '')", "text"),
}
CUSTOM_PREFIX = "custom."
# custom-field type (campaign_settings.CUSTOM_FIELD_TYPES) -> value type used here
_CUSTOM_TYPES = {"string": "text", "integer": "number", "number": "number", "boolean": "boolean", "date": "date"}
_CUSTOM_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")

OPERATORS = ("=", "!=", "in", "not in", "contains", "starts_with", ">=", "<=", "is_null", "not_null")
OPERATORS_BY_TYPE = {
    "text": set(OPERATORS),
    "number": {"=", "!=", "in", "not in", ">=", "<=", "is_null", "not_null"},
    "boolean": {"=", "!=", "is_null", "not_null"},
    "date": {"=", "!=", ">=", "<=", "is_null", "not_null"},
    "timestamp": {">=", "<=", "is_null", "not_null"},
}
_NO_VALUE = {"is_null", "not_null"}
_LIST_VALUE = {"in", "not in"}

_RELATIVE = re.compile(r"^-(\d{1,5})\s*([hdwm])$")
_RELATIVE_UNITS = {"h": "hours", "d": "days", "w": "weeks", "m": "months"}


@dataclass
class Condition:
    field: str
    operator: str
    value: Any  # str, list[str] (in / not in), or None (is_null / not_null)
    type: str = "text"  # value type resolved from the field: text | number | boolean | date | timestamp

    def describe(self) -> str:
        """Field and operator only (safe anywhere: both are allowlisted)."""
        return f"{self.field} {self.operator}"


def field_types(registry: Mapping[str, CustomField] | None = None) -> dict[str, str]:
    """Every field a filter may use, with its value type."""
    registry = load_custom_fields() if registry is None else registry
    fields = {name: kind for name, (_, kind) in CONTACT_FIELDS.items()}
    for name, spec in registry.items():
        fields[f"{CUSTOM_PREFIX}{name}"] = _CUSTOM_TYPES.get(getattr(spec, "type", "string"), "text")
    return fields


def field_sql_expression(field: str) -> str:
    """The SQL expression for an allowlisted field (defence in depth: re-checked whenever SQL is made)."""
    if field in CONTACT_FIELDS:
        return CONTACT_FIELDS[field][0]
    if field.startswith(CUSTOM_PREFIX) and _CUSTOM_NAME.match(field[len(CUSTOM_PREFIX) :]):
        return f"json_extract_string(c.custom_fields, '$.{field[len(CUSTOM_PREFIX) :]}')"
    raise ConfigError(f"unknown segment field {field[:60]!r}")


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<quoted>"(?:[^"]|"")*"|'(?:[^']|'')*')
      | (?P<op>!=|<>|>=|<=|==|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[^\s()=,!<>'"]+)
      | (?P<bad>["'!])
    )""",
    re.VERBOSE,
)


@dataclass
class _Tok:
    kind: str  # quoted | op | punct | word
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ConfigError(f"bad --where at character {pos + 1}: cannot read {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        raw = match.group(kind)
        start = match.start(kind)
        if kind == "bad":
            if raw in "\"'":
                raise ConfigError(
                    f"bad --where at character {start + 1}: unterminated quote {raw}; close it, or quote a value "
                    "containing one with the other kind of quote"
                )
            raise ConfigError(f"bad --where at character {start + 1}: '!' must be followed by '=' (use !=)")
        if kind == "quoted":
            raw = raw[1:-1].replace(raw[0] * 2, raw[0])
        tokens.append(_Tok(kind, raw, start))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, fields: dict[str, str]):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.fields = fields

    def peek(self, offset: int = 0) -> _Tok | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def next(self, what: str) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise ConfigError(f"bad --where: expected {what} but the text ended")
        self.i += 1
        return tok

    def is_word(self, tok: _Tok | None, *words: str) -> bool:
        return tok is not None and tok.kind == "word" and tok.text.lower() in words

    def error(self, tok: _Tok, message: str) -> ConfigError:
        return ConfigError(f"bad --where at character {tok.pos + 1}: {message}")

    def parse(self) -> list[Condition]:
        if not self.tokens:
            raise ConfigError("--where is empty: give at least one condition, e.g. lead_source = webinar")
        conditions = [self.condition()]
        while self.peek() is not None:
            tok = self.next("'and'")
            if self.is_word(tok, "or"):
                raise self.error(tok, "only 'and' is supported; make one segment per alternative, or use 'in (a,b)'")
            if not self.is_word(tok, "and"):
                raise self.error(tok, f"expected 'and' between conditions, found {tok.text[:30]!r}")
            conditions.append(self.condition())
        return conditions

    def condition(self) -> Condition:
        tok = self.next("a field name")
        if tok.kind != "word":
            raise self.error(tok, f"expected a field name, found {tok.text[:30]!r}")
        field = tok.text.lower()
        if field not in self.fields:
            if field.startswith(CUSTOM_PREFIX):
                declared = sorted(f for f in self.fields if f.startswith(CUSTOM_PREFIX)) or ["(none declared)"]
                raise self.error(
                    tok,
                    f"unknown custom field {field[:60]!r}: declare it in custom_fields.yaml "
                    f"(declared: {', '.join(declared)})",
                )
            raise self.error(
                tok,
                f"unknown field {field[:60]!r}; fields: "
                f"{', '.join(sorted(f for f in self.fields if not f.startswith(CUSTOM_PREFIX)))}, custom.<declared field>",
            )
        kind = self.fields[field]
        operator = self.operator()
        if operator not in OPERATORS_BY_TYPE[kind]:
            allowed = ", ".join(op for op in OPERATORS if op in OPERATORS_BY_TYPE[kind])
            raise self.error(tok, f"operator '{operator}' does not apply to {field} ({kind}); use one of: {allowed}")
        if operator in _NO_VALUE:
            value: Any = None
        elif operator in _LIST_VALUE:
            value = [_check_value(v, kind, field) for v in self.value_list()]
        else:
            value = _check_value(self.value(), kind, field)
        return Condition(field=field, operator=operator, value=value, type=kind)

    def operator(self) -> str:
        tok = self.next("an operator")
        if tok.kind == "op":
            if tok.text in ("<", ">"):
                raise self.error(tok, f"operator '{tok.text}' is not supported; use {tok.text}= ")
            return {"==": "=", "<>": "!="}.get(tok.text, tok.text)
        word = tok.text.lower() if tok.kind == "word" else ""
        if word in ("in", "contains", "starts_with", "is_null", "not_null"):
            return word
        if word == "not" and self.is_word(self.peek(), "in"):
            self.i += 1
            return "not in"
        if word == "not" and self.is_word(self.peek(), "null"):
            self.i += 1
            return "not_null"
        if word == "is":
            if self.is_word(self.peek(), "null"):
                self.i += 1
                return "is_null"
            if self.is_word(self.peek(), "not") and self.is_word(self.peek(1), "null"):
                self.i += 2
                return "not_null"
        raise self.error(tok, f"unknown operator {tok.text[:30]!r}; operators: {', '.join(OPERATORS)}")

    def value(self) -> str:
        """A quoted string, or bare words up to the next 'and' (joined by single spaces)."""
        tok = self.next("a value")
        if tok.kind == "quoted":
            return tok.text
        if tok.kind != "word":
            raise self.error(tok, f"expected a value, found {tok.text[:30]!r}")
        words = [tok.text]
        while (nxt := self.peek()) is not None and nxt.kind == "word" and not self.is_word(nxt, "and", "or"):
            words.append(nxt.text)
            self.i += 1
        return " ".join(words)

    def value_list(self) -> list[str]:
        tok = self.next("'('")
        if tok.kind != "punct" or tok.text != "(":
            raise self.error(tok, "'in' needs a list in parentheses, e.g. state in (CA, NY)")
        values: list[str] = []
        while True:
            tok = self.next("a value or ')'")
            if tok.kind == "quoted":
                values.append(tok.text)
            elif tok.kind == "word":
                words = [tok.text]
                while (nxt := self.peek()) is not None and nxt.kind == "word":
                    words.append(nxt.text)
                    self.i += 1
                values.append(" ".join(words))
            else:
                raise self.error(tok, f"expected a value in the list, found {tok.text[:30]!r}")
            sep = self.next("',' or ')'")
            if sep.kind == "punct" and sep.text == ")":
                return values
            if not (sep.kind == "punct" and sep.text == ","):
                raise self.error(sep, f"expected ',' or ')' in the list, found {sep.text[:30]!r}")


def _check_value(value: str, kind: str, field: str) -> str:
    """Validate (and normalize) one value for the field's type; the result is still stored as text data."""
    if len(value) > 500:
        raise ConfigError(f"value for {field} is too long ({len(value)} characters, at most 500)")
    if kind == "number":
        try:
            float(value)
        except ValueError:
            raise ConfigError(f"{field} is a number: {value[:40]!r} is not one") from None
        return value
    if kind == "boolean":
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "y", "1", "t"):
            return "true"
        if lowered in ("false", "no", "n", "0", "f"):
            return "false"
        raise ConfigError(f"{field} is true/false: {value[:40]!r} is neither")
    if kind in ("date", "timestamp"):
        text = value.strip().lower()
        relative = _RELATIVE.match(text)
        if relative:
            return f"-{int(relative.group(1))} {_RELATIVE_UNITS[relative.group(2)]}"
        try:
            if kind == "date":
                return date.fromisoformat(text).isoformat()
            return datetime.fromisoformat(value.strip()).replace(tzinfo=None).isoformat(sep=" ")
        except ValueError:
            raise ConfigError(
                f"{field} needs a date like 2026-01-31, or a relative time like -30d (also -12h, -2w, -3m); "
                f"got {value[:40]!r}"
            ) from None
    return value


def parse_where(text: str, registry: Mapping[str, CustomField] | None = None) -> list[Condition]:
    """Parse `field op value [and ...]`; ConfigError (one clear line) for anything outside the allowlists.

    Values: bare words (`lead_source = paid search`) or quoted (`company = "Smith and Sons"`); lists for
    in / not in: `state in (CA, NY)`. Text comparisons ignore case and surrounding spaces. Dates/timestamps take
    ISO dates or relative times (`updated_at >= -30d`), evaluated when the segment is queried.
    """
    if not isinstance(text, str):
        raise ConfigError("--where must be text")
    if len(text) > 4000:
        raise ConfigError("--where is too long (at most 4000 characters)")
    return _Parser(text, field_types(registry)).parse()

"""Segments without SQL: a named filter (`lead_source = webinar and state in (CA,NY)`) becomes a dbt view.

A filter is a list of conditions (field, operator, value). Fields and operators come from allowlists (the
contact-book columns, `custom.<name>` for declared custom fields); values are DATA: they are stored as rows of
the warehouse table `segment_filters` and the generated model reads them from there at query time. The model
file therefore contains only code-made SQL (allowlisted column expressions, operators, and the validated
segment name) — no user text at all, not even in comments or YAML descriptions, because dbt renders both
through Jinja. The original `--where` text is kept in a sidecar `<name>.json` that dbt does not read.

Previews run the same SQL with the values bound as parameters (`preview_segment_size`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from callaro_pipeline.config import CustomField, check_name, load_custom_fields
from callaro_pipeline.errors import ConfigError

# --- allowlists -------------------------------------------------------------------------------------------

# field name -> (SQL expression over the contacts alias `c`, value type). Expressions are code, never input.
STANDARD_FIELDS: dict[str, tuple[str, str]] = {
    "timezone": ("c.timezone", "text"),
    "timezone_source": ("c.timezone_source", "text"),
    "state": ("c.state", "text"),
    "country": ("c.country", "text"),
    "postal_code": ("c.postal_code", "text"),
    "lead_source": ("c.lead_source", "text"),
    "company": ("c.company", "text"),
    "consent": ("c.consent", "text"),
    "consent_source": ("c.consent_source", "text"),
    "consent_date": ("try_cast(c.consent_date AS DATE)", "date"),
    "phone_type": ("c.phone_type", "text"),
    "phone_region": ("c.phone_region", "text"),
    "phone_state": ("c.phone_state", "text"),
    "external_id": ("c.external_id", "text"),
    "email_domain": ("nullif(lower(split_part(c.email, '@', 2)), '')", "text"),
    "created_at": ("c.created_at", "timestamp"),
    "updated_at": ("c.updated_at", "timestamp"),
}
CUSTOM_PREFIX = "custom."
# custom-field type (config.CUSTOM_FIELD_TYPES) -> value type used here
_CUSTOM_TYPES = {"string": "text", "integer": "number", "number": "number", "boolean": "boolean", "date": "date"}
_CUSTOM_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")

OPERATORS = ("=", "!=", "in", "not in", "contains", "starts_with", ">=", "<=", "is_null", "not_null")
_OPERATORS_BY_TYPE = {
    "text": set(OPERATORS),
    "number": {"=", "!=", "in", "not in", ">=", "<=", "is_null", "not_null"},
    "boolean": {"=", "!=", "is_null", "not_null"},
    "date": {"=", "!=", ">=", "<=", "is_null", "not_null"},
    "timestamp": {">=", "<=", "is_null", "not_null"},
}
_NO_VALUE = {"is_null", "not_null"}
_LIST_VALUE = {"in", "not in"}

SEGMENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
FILTERS_SUBDIR = Path("models") / "segments" / "filters"
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
    fields = {name: kind for name, (_, kind) in STANDARD_FIELDS.items()}
    for name, spec in registry.items():
        fields[f"{CUSTOM_PREFIX}{name}"] = _CUSTOM_TYPES.get(getattr(spec, "type", "string"), "text")
    return fields


def _field_expr(field: str) -> str:
    """The SQL expression for an allowlisted field (defence in depth: re-checked whenever SQL is made)."""
    if field in STANDARD_FIELDS:
        return STANDARD_FIELDS[field][0]
    if field.startswith(CUSTOM_PREFIX) and _CUSTOM_NAME.match(field[len(CUSTOM_PREFIX) :]):
        return f"json_extract_string(c.custom_fields, '$.{field[len(CUSTOM_PREFIX) :]}')"
    raise ConfigError(f"unknown segment field {field[:60]!r}")


# --- the --where mini-language ----------------------------------------------------------------------------

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
        if operator not in _OPERATORS_BY_TYPE[kind]:
            allowed = ", ".join(op for op in OPERATORS if op in _OPERATORS_BY_TYPE[kind])
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


def parse_where(
    text: str, registry: Mapping[str, CustomField] | None = None, *, extra_fields: Mapping[str, str] | None = None
) -> list[Condition]:
    """Parse `field op value [and ...]`; ConfigError (one clear line) for anything outside the allowlists.

    Values: bare words (`lead_source = paid search`) or quoted (`company = "Smith and Sons"`); lists for
    in / not in: `state in (CA, NY)`. Text comparisons ignore case and surrounding spaces. Dates/timestamps take ISO dates or relative
    times (`updated_at >= -30d`), evaluated when the segment is queried.
    """
    if not isinstance(text, str):
        raise ConfigError("--where must be text")
    if len(text) > 4000:
        raise ConfigError("--where is too long (at most 4000 characters)")
    return _Parser(text, {**field_types(registry), **(extra_fields or {})}).parse()


# --- SQL (code-made only) ---------------------------------------------------------------------------------

_FILTER_VALUES_CTE = """with filter_values as (
    -- one row per condition of this segment: the value as text, as a list (in / not in), and as a time
    select
        f.position,
        f.field,
        f.operator,
        f.value_json ->> '$' as value_text,
        case when json_type(f.value_json) = 'ARRAY' then from_json(f.value_json, '["VARCHAR"]') end as value_list,
        case
            when starts_with(f.value_json ->> '$', '-')
                then {now} - try_cast(substr(f.value_json ->> '$', 2) as interval)
            else try_cast(f.value_json ->> '$' as timestamp)
        end as value_time
    from {filters} as f
),
filter_list_values as (
    select f.position, u.value
    from filter_values as f, unnest(f.value_list) as u(value)
)"""


def _condition_sql(cond: Condition, position: int) -> str:
    if cond.operator not in OPERATORS:
        raise ConfigError(f"unknown operator {str(cond.operator)[:30]!r}")
    # standard fields have a fixed type; custom fields carry theirs from the registry (parse_where sets it)
    kind = STANDARD_FIELDS[cond.field][1] if cond.field in STANDARD_FIELDS else cond.type
    kind = kind if kind in _OPERATORS_BY_TYPE else "text"
    if cond.operator not in _OPERATORS_BY_TYPE[kind]:
        raise ConfigError(f"operator '{cond.operator}' does not apply to {cond.field} ({kind})")
    expr = _field_expr(cond.field)
    # code-made SQL only: integer positions, allowlisted expressions (S608 is a false positive here)
    text = f"(select value_text from filter_values where position = {int(position)})"  # noqa: S608
    items = f"(select {{item}} from filter_list_values where position = {int(position)})"  # noqa: S608
    if cond.operator == "is_null":
        return f"nullif(trim(CAST({expr} AS VARCHAR)), '') is null"
    if cond.operator == "not_null":
        return f"nullif(trim(CAST({expr} AS VARCHAR)), '') is not null"
    if kind == "text":
        column, value, item = f"lower(trim({expr}))", f"lower(trim({text}))", "lower(trim(value))"
    elif kind == "number":
        column, value, item = f"try_cast({expr} AS DOUBLE)", f"try_cast({text} AS DOUBLE)", "try_cast(value AS DOUBLE)"
    elif kind == "boolean":
        column, value, item = f"try_cast({expr} AS BOOLEAN)", f"try_cast({text} AS BOOLEAN)", "value"
    else:
        when = f"(select value_time from filter_values where position = {int(position)})"  # noqa: S608
        column, value, item = expr, (f"CAST({when} AS DATE)" if kind == "date" else when), "value"
    op = cond.operator
    if op == "=":
        return f"{column} = {value}"
    if op == "!=":
        return f"{column} is distinct from {value}"
    if op in (">=", "<="):
        return f"{column} {op} {value}"
    if op == "contains":
        return f"contains({column}, {value})"
    if op == "starts_with":
        return f"starts_with({column}, {value})"
    membership = f"coalesce({column} in {items.format(item=item)}, false)"
    return membership if op == "in" else f"not {membership}"


def _select_sql(conditions: list[Condition], *, contacts: str, filters: str, now: str) -> str:
    if not conditions:
        raise ConfigError("a segment needs at least one condition")
    where = "\n  and ".join(_condition_sql(cond, i) for i, cond in enumerate(conditions, start=1))
    # Fail closed: if the stored rows are missing or do not match the conditions this SQL was made for, the
    # segment is empty (a missing value must never turn `state != CA` into "everyone"). The signature is made
    # of allowlisted field names and operators only.
    signature = ",".join(f"{i}:{cond.field}:{cond.operator}" for i, cond in enumerate(conditions, start=1))
    if not re.fullmatch(r"[a-z0-9_.:,=!<> ]+", signature):
        raise ConfigError("invalid segment conditions")
    stored = (
        "(select string_agg(position || ':' || field || ':' || operator, ',' order by position) from filter_values)"
    )
    guard = f"{stored} = '{signature}'"
    where = f"{guard}\n  and {where}"
    return f"{_FILTER_VALUES_CTE.format(now=now, filters=filters)}\nselect c.*\nfrom {contacts} as c\nwhere {where}\n"


# the filter segment's rows in the warehouse; `name` has passed check_segment_name
_FILTER_ROWS_SOURCE = """(
        select position, field, operator, value_json
        from {{{{ source('callaro', 'segment_filters') }}}}
        where segment = '{name}'
    )"""


def _value_json(cond: Condition) -> str | None:
    return None if cond.value is None else json.dumps(cond.value, ensure_ascii=False)


def model_sql(name: str, conditions: list[Condition]) -> str:
    """The dbt model for a filter segment: only allowlisted identifiers; values come from segment_filters."""
    name = check_segment_name(name)
    fields = ", ".join(cond.describe() for cond in conditions)
    header = (
        f"-- Filter segment {name}: generated by `callaro segment create`, do not edit by hand.\n"
        f"-- Conditions: {fields}. Their values are rows of segment_filters (data, never SQL text).\n"
    )
    body = _select_sql(
        conditions,
        contacts="{{ ref('stg_contacts') }}",
        filters=_FILTER_ROWS_SOURCE.format(name=name),
        now="{{ utc_now() }}",
    )
    return header + body


def preview_segment_size(con: duckdb.DuckDBPyConnection, conditions: list[Condition]) -> int:
    """How many contacts match, computed on the contact book with the values as bound parameters."""
    if not conditions:
        raise ConfigError("a segment needs at least one condition")
    rows = ", ".join(
        "(CAST(? AS INTEGER), CAST(? AS VARCHAR), CAST(? AS VARCHAR), CAST(? AS JSON))" for _ in conditions
    )
    params: list[Any] = []
    for position, cond in enumerate(conditions, start=1):
        params += [position, cond.field, cond.operator, _value_json(cond)]
    sql = _select_sql(
        conditions,
        contacts="main.contacts",
        filters=f"(select * from (values {rows}) as v(position, field, operator, value_json))",  # noqa: S608 - placeholders
        now="(now() at time zone 'UTC')",
    )
    return int(con.execute(f"select count(*) from ({sql}) as matched", params).fetchone()[0])  # noqa: S608


# --- segments on disk and in the warehouse ----------------------------------------------------------------


def check_segment_name(name: str) -> str:
    check_name(name, "segment name")
    if not SEGMENT_NAME.match(name):
        raise ConfigError(
            f"invalid segment name {name!r}: use lowercase letters, digits and '_', starting with a letter "
            "(it becomes a table name)"
        )
    return name


def segment_contacts_sql(name: str) -> str:
    """How audiences select a segment's members."""
    return f'select contact_id from segments."{check_segment_name(name)}"'  # noqa: S608 - validated name


def _segment_files(dbt_dir: Path) -> dict[str, Path]:
    root = Path(dbt_dir) / "models" / "segments"
    return {p.stem: p for p in sorted(root.rglob("*.sql"))} if root.exists() else {}


def _model_names(dbt_dir: Path) -> set[str]:
    return {p.stem for p in (Path(dbt_dir) / "models").rglob("*.sql")} | {
        p.stem for p in (Path(dbt_dir) / "seeds").glob("*.csv")
    }


def _contact_columns(dbt_dir: Path) -> list[dict[str, str]]:
    """stg_contacts' documented columns: generated segments return the same columns, so reuse the docs."""
    for path in (Path(dbt_dir) / "models" / "staging").glob("*.yml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for model in doc.get("models") or []:
            if model.get("name") == "stg_contacts":
                return [{"name": c["name"], "description": c.get("description", "")} for c in model["columns"]]
    return [{"name": "contact_id", "description": "The contact."}]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """True inside an explicit transaction (autocommit gives every statement a new id). Probing with a nested
    BEGIN would not do: its error aborts the caller's transaction."""
    first = con.execute("SELECT current_transaction_id()").fetchone()[0]
    return con.execute("SELECT current_transaction_id()").fetchone()[0] == first


def _replace_rows(con: duckdb.DuckDBPyConnection, name: str, conditions: list[Condition] | None) -> None:
    """Replace the segment's rows in segment_filters, in one transaction (or the caller's, if one is open)."""
    own = not _in_transaction(con)
    if own:
        con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM segment_filters WHERE segment = ?", [name])
        now = datetime.now(UTC).replace(tzinfo=None)
        for position, cond in enumerate(conditions or [], start=1):
            con.execute(
                "INSERT INTO segment_filters (segment, position, field, operator, value_json, created_at) "
                "VALUES (?, ?, ?, ?, CAST(? AS JSON), ?)",
                [name, position, cond.field, cond.operator, _value_json(cond), now],
            )
    except BaseException:
        if own:
            con.execute("ROLLBACK")
        raise
    if own:
        con.execute("COMMIT")


def create_filter_segment(
    con: duckdb.DuckDBPyConnection,
    name: str,
    where: str,
    *,
    dbt_dir: Path,
    registry: Mapping[str, CustomField] | None = None,
    replace: bool = False,
) -> Path:
    """Store the filter's conditions as rows and write its dbt model; returns the model path.

    `con` is a read-write warehouse connection (segment_filters exists once Warehouse.connect() ran). The view
    exists in the warehouse after the next `dbt build` (re-parse first so Dagster sees the new model).
    """
    name = check_segment_name(name)
    conditions = parse_where(where, registry)
    dbt_dir = Path(dbt_dir)
    directory = dbt_dir / FILTERS_SUBDIR
    model_path = directory / f"{name}.sql"
    if name in _model_names(dbt_dir) and not model_path.exists():
        raise ConfigError(f"segment name {name!r} is already used by a dbt model or seed; pick another name")
    if model_path.exists() and not replace:
        raise ConfigError(f"segment {name!r} already exists; replace it explicitly (or delete it first)")
    sql = model_sql(name, conditions)
    _replace_rows(con, name, conditions)
    directory.mkdir(parents=True, exist_ok=True)
    fields = ", ".join(cond.describe() for cond in conditions)
    columns: list[dict[str, Any]] = _contact_columns(dbt_dir)
    for column in columns:
        if column["name"] == "contact_id":
            column["data_tests"] = ["not_null", "unique"]
    properties = {
        "version": 2,
        "models": [
            {
                "name": name,
                # allowlisted field names and operators only: dbt renders descriptions through Jinja
                "description": f"Filter segment made with `callaro segment create` on: {fields}. "
                "Values are stored in the segment_filters table; see the sidecar JSON for the original --where.",
                "config": {"meta": {"callaro": {"kind": "filter"}}},
                "columns": columns,
            }
        ],
    }
    sidecar = {
        "name": name,
        "where": where,
        "conditions": [{"field": c.field, "operator": c.operator, "value": c.value} for c in conditions],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_atomic(directory / f"{name}.json", json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n")
    _write_atomic(directory / f"{name}.yml", yaml.safe_dump(properties, sort_keys=False, width=120))
    _write_atomic(model_path, sql)
    return model_path


def delete_filter_segment(con: duckdb.DuckDBPyConnection, name: str, *, dbt_dir: Path) -> None:
    """Remove a filter segment's model files and rows (the view disappears on the next dbt build / drop)."""
    name = check_segment_name(name)
    directory = Path(dbt_dir) / FILTERS_SUBDIR
    if not (directory / f"{name}.sql").exists():
        raise ConfigError(f"no filter segment named {name!r}")
    for suffix in (".sql", ".yml", ".json"):
        (directory / f"{name}{suffix}").unlink(missing_ok=True)
    _replace_rows(con, name, None)
    con.execute(f'DROP VIEW IF EXISTS segments."{name}"')


def build_models(warehouse: Any, select: Sequence[str] = (), *, dbt_dir: Path | None = None) -> None:
    """`dbt build` segment models outside Dagster (e.g. right after `create_filter_segment`), under the
    warehouse writer lock, then publish the analysts' snapshot. ConfigError if dbt fails."""
    from callaro_pipeline.assets import segments as dbt_segments  # imports dagster-dbt: only when needed

    project = dbt_segments.make_project(dbt_dir) if dbt_dir else None
    if not dbt_segments.build_segments(warehouse, select, project=project):
        which = ", ".join(select) if select else "all models"
        raise ConfigError(
            f"dbt build failed for {which}: see target/dbt.log in the dbt project (the segment definition was saved)"
        )


def list_segments(dbt_dir: Path) -> list[dict[str, Any]]:
    """Every segment model: name, kind ("sql" | "filter"), description, where (filters), path."""
    dbt_dir = Path(dbt_dir)
    descriptions: dict[str, str] = {}
    for path in sorted((dbt_dir / "models" / "segments").rglob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for model in doc.get("models") or []:
            descriptions[str(model.get("name"))] = str(model.get("description") or "").strip()
    result = []
    for name, path in _segment_files(dbt_dir).items():
        kind = "filter" if path.parent.name == "filters" else "sql"
        where = None
        if kind == "filter":
            try:
                where = json.loads(path.with_suffix(".json").read_text(encoding="utf-8")).get("where")
            except (OSError, ValueError):
                where = None
        result.append(
            {"name": name, "kind": kind, "description": descriptions.get(name, ""), "where": where, "path": path}
        )
    return sorted(result, key=lambda item: item["name"])

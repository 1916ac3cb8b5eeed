"""The one filter language: `--where` text in, a parameterized SQL fragment out. Pure (no Dagster, no DuckDB).

Used with one meaning by filter segments (`callaro segment create NAME --where ...`, a dbt view) and by
`callaro contacts update|remove|export --where ...`: same fields, same operators, same comparisons. Text
comparisons ignore case and surrounding spaces (`lead_source = webinar` matches "Webinar" and " webinar ");
`!=` and `not in` count an empty field as "not equal"; numbers, booleans and dates compare by value.

A filter is a list of conditions (field, operator, value). Fields and operators come from allowlists (the
contact-book columns, `custom.<name>` for declared custom fields); values are DATA, never SQL text. The
compiled SQL reads them from a `filter_values` relation of rows `(position, field, operator, value_json)`:
either bound parameters (`bound_select_sql`, for previews and contact management) or the warehouse table
`segment_filters` (a segment's dbt model). Both go through `select_sql`, so they cannot disagree.
"""

from __future__ import annotations

import json
import re
from typing import Any

from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.filter_parser import (
    CONTACT_FIELDS,
    OPERATORS,
    OPERATORS_BY_TYPE,
    Condition,
    field_sql_expression,
)

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
    kind = CONTACT_FIELDS[cond.field][1] if cond.field in CONTACT_FIELDS else cond.type
    kind = kind if kind in OPERATORS_BY_TYPE else "text"
    if cond.operator not in OPERATORS_BY_TYPE[kind]:
        raise ConfigError(f"operator '{cond.operator}' does not apply to {cond.field} ({kind})")
    expr = field_sql_expression(cond.field)
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


def select_sql(conditions: list[Condition], *, contacts: str, filters: str, now: str) -> str:
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


def value_json(cond: Condition) -> str | None:
    """A condition's value as stored in `segment_filters.value_json` (and bound by `bound_select_sql`)."""
    return None if cond.value is None else json.dumps(cond.value, ensure_ascii=False)


NOW_UTC = "(now() at time zone 'UTC')"


def bound_select_sql(conditions: list[Condition], *, contacts: str = "main.contacts") -> tuple[str, list[Any]]:
    """`select c.* from <contacts> as c where <conditions>` with every value a bound parameter: the SQL of a
    segment, with its `filter_values` rows given as parameters instead of read from `segment_filters`."""
    if not conditions:
        raise ConfigError("a filter needs at least one condition")
    rows = ", ".join(
        "(CAST(? AS INTEGER), CAST(? AS VARCHAR), CAST(? AS VARCHAR), CAST(? AS JSON))" for _ in conditions
    )
    params: list[Any] = []
    for position, cond in enumerate(conditions, start=1):
        params += [position, cond.field, cond.operator, value_json(cond)]
    sql = select_sql(
        conditions,
        contacts=contacts,
        filters=f"(select * from (values {rows}) as v(position, field, operator, value_json))",  # noqa: S608 - placeholders
        now=NOW_UTC,
    )
    return sql, params

"""What an upload's scrub suppresses: the rows with reasons, counted by reason, and the other numbers taken off
the released contacts. Pure: the scrubbed frame in (`callaro_pipeline.storage.suppression.scrub`), frames and
counts out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import polars as pl


@dataclass(frozen=True)
class Suppressed:
    rows: pl.DataFrame  # row_number, phone_e164, reasons, checked_at: the rows that may not be called
    by_reason: dict[str, int]
    other_phones: int  # listed other numbers taken off the released rows (they stay callable on their phone)


def suppressed_rows(scrubbed: pl.DataFrame, checked_at: datetime) -> Suppressed:
    """The scrubbed upload's suppressed rows (any reason), their count per reason, and how many listed other
    numbers the released rows lost."""
    other_phones = int(
        scrubbed.filter(pl.col("reasons").list.len() == 0)
        .get_column("other_phones_suppressed")
        .list.len()
        .fill_null(0)
        .sum()
    )
    rows = scrubbed.filter(pl.col("reasons").list.len() > 0).select(
        "row_number", "phone_e164", "reasons", pl.lit(checked_at).alias("checked_at")
    )
    by_reason = (
        rows.explode("reasons").group_by("reasons").agg(pl.len().alias("n")).sort("reasons").iter_rows()
        if rows.height
        else []
    )
    return Suppressed(rows=rows, by_reason=dict(by_reason), other_phones=other_phones)


def list_problems(
    states: dict[str, dict | None], *, require_national: bool, now: datetime, max_age_days: int
) -> list[str]:
    """Why the lists cannot be trusted (empty: they can), from each applicable source's state
    (`storage.suppression.source_states`; None for a source never loaded): a latest load with zero rows, and
    with `require_national` a national list never loaded, without a full snapshot or older than `max_age_days`.
    Messages carry no phone numbers."""
    problems = []
    for source, state in states.items():
        if state is not None and state["latest_rows"] == 0:
            problems.append(f"the latest load of the {source} DNC list ({state['latest_load_id']}) has zero rows")
    national = states.get("national")
    if require_national and national is None:
        problems.append("the national DNC list has never been loaded")
    elif require_national and national is not None:
        as_of = national["snapshot_date"]
        if as_of is None:
            problems.append("the national DNC list has no full snapshot (change lists alone are not a list)")
        else:
            age = (now.date() - date.fromisoformat(as_of)).days
            if age > max_age_days:
                problems.append(
                    f"the national DNC snapshot is {age} days old (as of {as_of}; limit {max_age_days} days)"
                )
    return problems

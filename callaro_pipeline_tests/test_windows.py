"""Calling windows: edges in local time, state rules, DST days, several candidate zones, the SQL macro."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callaro_pipeline.config import WEEKDAYS, CallingWindow
from callaro_pipeline.warehouse import Warehouse, stage
from callaro_pipeline.windows import call_windows, call_windows_for_keys, callable_at, next_call_start, window_keys

ALWAYS = CallingWindow(start="00:00", end="24:00", days=WEEKDAYS)
NEW_YORK, CHICAGO = "America/New_York", "America/Chicago"


def people(*rows: tuple[list[str] | None, str | None, str | None]) -> pl.DataFrame:
    """Rows of (timezone_candidates, phone_state, state)."""
    return pl.DataFrame(
        {
            "contact_id": [f"c{i}" for i in range(len(rows))],
            "timezone_candidates": [row[0] for row in rows],
            "phone_state": [row[1] for row in rows],
            "state": [row[2] for row in rows],
        },
        schema={
            "contact_id": pl.Utf8,
            "timezone_candidates": pl.List(pl.Utf8),
            "phone_state": pl.Utf8,
            "state": pl.Utf8,
        },
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def open_at(frame: pl.DataFrame, text: str, window: CallingWindow = ALWAYS) -> list[bool]:
    return callable_at(frame, window, utc(text)).to_list()


def test_legal_hours_edges_in_local_time():
    chicago = people(([CHICAGO], None, None))  # 2026-06-10 is a Wednesday, CDT = UTC-5
    assert open_at(chicago, "2026-06-10 12:59") == [False]  # 07:59
    assert open_at(chicago, "2026-06-10 13:00") == [True]  # 08:00
    assert open_at(chicago, "2026-06-11 01:59") == [True]  # 20:59
    assert open_at(chicago, "2026-06-11 02:00") == [False]  # 21:00


def test_florida_closes_at_eight():
    frame = people(([NEW_YORK], "FL", None), ([NEW_YORK], "NY", "NY"))  # EDT = UTC-4
    assert open_at(frame, "2026-06-10 23:59") == [True, True]  # 19:59
    assert open_at(frame, "2026-06-11 00:00") == [False, True]  # 20:00


@pytest.mark.parametrize(
    ("phone_state", "state"), [("NY", "FL"), ("FL", "NY"), (None, "Florida"), ("fl ", None), ("OK", None)]
)
def test_the_stricter_of_area_code_state_and_address_state_wins(phone_state, state):
    frame = people(([NEW_YORK], phone_state, state))
    assert open_at(frame, "2026-06-11 00:00") == [False]


def test_state_day_rules():
    texas = people(([CHICAGO], "TX", None))  # Sundays from noon, other days from 09:00
    assert open_at(texas, "2026-06-14 16:59") == [False]  # Sunday 11:59
    assert open_at(texas, "2026-06-14 17:00") == [True]
    assert open_at(texas, "2026-06-15 13:30") == [False]  # Monday 08:30
    mississippi = people(([CHICAGO], "MS", None))
    assert open_at(mississippi, "2026-06-14 17:00") == [False]
    utah = people((["America/Denver"], None, "UT"))  # Independence Day 2026 is a Saturday: observed Friday
    assert open_at(utah, "2026-07-03 18:00") == [False]
    assert open_at(utah, "2026-07-02 18:00") == [True]
    assert open_at(utah, "2026-07-24 18:00") == [False]  # Pioneer Day, Utah only
    assert open_at(people((["America/Denver"], None, "CO")), "2026-07-24 18:00") == [True]


def test_dst_start_day_new_york():
    frame = people(([NEW_YORK], None, None))  # 2026-03-08: 02:00 EST -> 03:00 EDT
    assert open_at(frame, "2026-03-08 11:59") == [False]  # 07:59 EDT
    assert open_at(frame, "2026-03-08 12:00") == [True]  # 08:00 EDT
    assert open_at(frame, "2026-03-09 00:59") == [True]  # 20:59 EDT
    assert open_at(frame, "2026-03-09 01:00") == [False]  # 21:00 EDT
    assert open_at(frame, "2026-03-07 12:30") == [False]  # the day before: 07:30 EST
    assert next_call_start(frame, ALWAYS, utc("2026-03-08 05:00")).to_list() == [utc("2026-03-08 12:00")]


def test_dst_end_day_new_york():
    frame = people(([NEW_YORK], None, None))  # 2026-11-01: 02:00 EDT -> 01:00 EST
    assert open_at(frame, "2026-11-01 12:59") == [False]  # 07:59 EST
    assert open_at(frame, "2026-11-01 13:00") == [True]  # 08:00 EST
    assert open_at(frame, "2026-11-02 01:59") == [True]  # 20:59 EST
    assert open_at(frame, "2026-11-02 02:00") == [False]  # 21:00 EST
    assert next_call_start(frame, ALWAYS, utc("2026-11-01 04:00")).to_list() == [utc("2026-11-01 13:00")]


def test_several_candidate_zones_open_only_when_all_are():
    frame = people(([NEW_YORK, CHICAGO], None, None), ([NEW_YORK], None, None))
    assert open_at(frame, "2026-06-10 12:30") == [False, True]  # NY 08:30, Chicago 07:30
    assert open_at(frame, "2026-06-10 13:00") == [True, True]
    assert open_at(frame, "2026-06-11 00:30") == [True, True]  # NY 20:30, Chicago 19:30
    assert open_at(frame, "2026-06-11 01:00") == [False, False]  # NY 21:00
    starts = next_call_start(frame, ALWAYS, utc("2026-06-10 03:00")).to_list()
    assert starts == [utc("2026-06-10 13:00"), utc("2026-06-10 12:00")]


def test_no_or_unknown_zone_is_never_callable():
    frame = people(
        (None, "NY", None), ([], None, None), (["Mars/Olympus"], None, None), ([NEW_YORK, "Nowhere"], None, None)
    )
    assert open_at(frame, "2026-06-10 16:00") == [False] * 4
    assert next_call_start(frame, ALWAYS, utc("2026-06-10 16:00")).to_list() == [None] * 4


def test_campaign_window_and_days_narrow_the_legal_hours():
    office = CallingWindow(start="09:00", end="17:00", days=("mon", "tue", "wed", "thu", "fri"))
    frame = people(([NEW_YORK], None, None))
    assert open_at(frame, "2026-06-10 12:59", office) == [False]  # Wednesday 08:59
    assert open_at(frame, "2026-06-10 13:00", office) == [True]
    assert open_at(frame, "2026-06-10 21:00", office) == [False]  # 17:00
    assert open_at(frame, "2026-06-13 15:00", office) == [False]  # Saturday
    # From Friday 17:00 the next start is Monday 09:00.
    assert next_call_start(frame, office, utc("2026-06-12 21:00")).to_list() == [utc("2026-06-15 13:00")]
    wide = CallingWindow(start="06:00", end="23:30", days=WEEKDAYS)
    assert open_at(frame, "2026-06-10 11:30", wide) == [False]  # 07:30: the law still applies
    assert open_at(frame, "2026-06-11 01:30", wide) == [False]  # 21:30


def test_next_call_start_is_now_when_open_and_null_beyond_fourteen_days():
    frame = people(([NEW_YORK], None, None))
    now = utc("2026-06-10 15:17")
    assert next_call_start(frame, ALWAYS, now).to_list() == [now]
    never = CallingWindow(start="21:00", end="22:00", days=WEEKDAYS)
    assert next_call_start(frame, never, now).to_list() == [None]
    assert next_call_start(frame, ALWAYS, now).dtype == pl.Datetime("us", "UTC")


def test_naive_instants_are_utc():
    frame = people(([NEW_YORK], None, None))
    assert callable_at(frame, ALWAYS, datetime(2026, 6, 10, 12, 0)).to_list() == [True]


def test_rows_keep_their_order_across_combinations():
    rows = [([NEW_YORK], "FL", None), ([CHICAGO], None, None), ([NEW_YORK], None, None)] * 1000
    result = callable_at(people(*rows), ALWAYS, utc("2026-06-11 00:30")).to_list()  # NY 20:30, Chicago 19:30
    assert result == [False, True, True] * 1000


@settings(max_examples=40, deadline=None)
@given(
    minutes=st.integers(min_value=0, max_value=13 * 24 * 60),
    zones=st.sampled_from([[NEW_YORK], [CHICAGO], [NEW_YORK, CHICAGO], ["America/Los_Angeles"], ["Europe/London"]]),
    state=st.sampled_from([None, "FL", "TX", "UT", "RI"]),
)
def test_the_three_views_of_a_window_agree(minutes, zones, state):
    now = utc("2026-10-25 00:00")  # spans the US and EU DST ends
    instant = now + timedelta(minutes=minutes)
    frame = people((zones, state, None))
    window = CallingWindow(start="08:30", end="20:45", days=("mon", "tue", "wed", "thu", "fri", "sun"))
    intervals = call_windows(frame, window, now)
    inside = intervals.filter((pl.col("opens_utc") <= instant) & (instant < pl.col("closes_utc"))).height > 0
    assert callable_at(frame, window, instant).to_list() == [inside]
    start = next_call_start(frame, window, instant)[0]
    if start is not None:
        assert callable_at(frame, window, start).to_list() == [True]
        assert start == instant or not callable_at(frame, window, start - timedelta(minutes=1))[0]


def test_sql_macro_answers_who_may_be_called_at_an_instant(tmp_path: Path):
    now = utc("2026-06-10 03:00")
    members = people(([NEW_YORK], None, None), ([CHICAGO], None, None), ([NEW_YORK], "FL", None))
    with Warehouse(home=str(tmp_path)).connect() as con:
        keyed = members.with_columns(window_keys(members).alias("window_key"))
        by_key = call_windows_for_keys(keyed["window_key"].unique().to_list(), ALWAYS, now)
        # the windows stored per key are each member's own windows
        assert (
            keyed.join(by_key, on="window_key")
            .select(call_windows(members, ALWAYS, now).columns)
            .sort("contact_id", "opens_utc")
            .equals(call_windows(members, ALWAYS, now).sort("contact_id", "opens_utc"))
        )
        for number, (build_id, built_at) in enumerate(
            (("spring-000001", now - timedelta(days=1)), ("spring-000002", now)), start=1
        ):
            con.execute("INSERT INTO audience_builds VALUES (?, 'spring', ?, 3, 0, '{}')", [build_id, built_at])
            stage(con, "members", keyed.select("contact_id", "window_key"))
            con.execute(
                "INSERT INTO audience_member_versions "
                "(campaign, from_build, to_build, contact_id, outcome, phone_e164, window_key) "
                "SELECT 'spring', ?, ?, contact_id, 'member', '+1' || contact_id, window_key FROM members",
                [number, number + 1],
            )
            stage(con, "windows", by_key.with_columns(pl.lit(build_id).alias("build_id")))
            con.execute("INSERT INTO audience_build_windows BY NAME SELECT * FROM windows")

        def who(ts: str) -> list[tuple[str, str]]:
            return con.execute(
                "SELECT contact_id, build_id FROM callable_contacts('spring', ?::TIMESTAMPTZ) ORDER BY contact_id",
                [ts],
            ).fetchall()

        assert who("2026-06-10 12:30:00+00") == [("c0", "spring-000002"), ("c2", "spring-000002")]
        assert who("2026-06-11 00:30:00+00") == [("c0", "spring-000002"), ("c1", "spring-000002")]  # FL closed at 20:00
        assert who("2026-06-10 08:00:00+00") == []
        assert who("2026-06-30 16:00:00+00") == []  # beyond the precomputed horizon: nobody (fails closed)
        assert con.execute("SELECT count(*) FROM callable_contacts('autumn', now())").fetchone() == (0,)

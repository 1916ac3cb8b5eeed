"""Calling windows: edges in local time, state rules, DST days, several candidate zones, the SQL macro."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays as holiday_calendars
import polars as pl
import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from callaro_pipeline.core.campaign_settings import WEEKDAYS, CallingWindow
from callaro_pipeline.core.errors import ConfigError
from callaro_pipeline.core.window_rules import calling_rules, rules_path
from callaro_pipeline.core.windows import HORIZON_DAYS, call_windows_for_keys, window_keys
from callaro_pipeline.storage.warehouse import Warehouse, stage

ALWAYS = CallingWindow(start="00:00", end="24:00", days=WEEKDAYS)
NEW_YORK, CHICAGO = "America/New_York", "America/Chicago"


def people(*rows: tuple) -> pl.DataFrame:
    """Rows of (timezone_candidates, phone_state, state[, country[, phone_region[, postal_code]]])."""
    rows = tuple((*row, *([None] * (6 - len(row)))) for row in rows)
    return pl.DataFrame(
        {
            "contact_id": [f"c{i}" for i in range(len(rows))],
            "timezone_candidates": [row[0] for row in rows],
            "phone_state": [row[1] for row in rows],
            "state": [row[2] for row in rows],
            "country": [row[3] for row in rows],
            "phone_region": [row[4] for row in rows],
            "postal_code": [row[5] for row in rows],
        },
        schema={
            "contact_id": pl.Utf8,
            "timezone_candidates": pl.List(pl.Utf8),
            "phone_state": pl.Utf8,
            "state": pl.Utf8,
            "country": pl.Utf8,
            "phone_region": pl.Utf8,
            "postal_code": pl.Utf8,
        },
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# The pipeline stores each build member's window key (`window_keys`) and the open intervals of every key
# (`call_windows_for_keys`); the helpers below read a contact's windows through exactly those two functions.


def call_windows(
    frame: pl.DataFrame, window: CallingWindow, now: datetime, days: int = HORIZON_DAYS, *, not_after=None
) -> pl.DataFrame:
    """contact_id, opens_utc, closes_utc: each contact's open intervals as an audience build stores them."""
    keyed = frame.select("contact_id", window_keys(frame).alias("window_key"))
    by_key = call_windows_for_keys(keyed["window_key"].unique().to_list(), window, now, days, not_after=not_after)
    return keyed.join(by_key, on="window_key").select("contact_id", "opens_utc", "closes_utc").sort(pl.all())


def callable_at(frame: pl.DataFrame, window: CallingWindow, instant: datetime) -> pl.Series:
    """Per row: does `instant` lie in one of the contact's intervals [opens_utc, closes_utc) from that instant?"""
    at = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
    inside = call_windows(frame, window, at, days=1).filter((pl.col("opens_utc") <= at) & (at < pl.col("closes_utc")))
    return frame["contact_id"].is_in(inside["contact_id"].implode()).alias("callable")


def next_call_start(frame: pl.DataFrame, window: CallingWindow, now: datetime) -> pl.Series:
    """Per row: the first opening at or after `now` within the 14 days a build stores (null if none)."""
    firsts = call_windows(frame, window, now).group_by("contact_id").agg(pl.col("opens_utc").min())
    return frame.select("contact_id").join(firsts, on="contact_id", how="left", maintain_order="left")["opens_utc"]


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
    naive = call_windows_for_keys(window_keys(frame).to_list(), ALWAYS, datetime(2026, 6, 10, 12, 0), 1)
    assert naive.equals(call_windows_for_keys(window_keys(frame).to_list(), ALWAYS, utc("2026-06-10 12:00"), 1))
    assert naive["opens_utc"][0] == utc("2026-06-10 12:00")  # 08:00 EDT


def test_rows_keep_their_order_across_combinations():
    rows = [([NEW_YORK], "FL", None), ([CHICAGO], None, None), ([NEW_YORK], None, None)] * 1000
    keys = window_keys(people(*rows)).to_list()
    assert keys == keys[:3] * 1000 and len(set(keys)) == 3
    result = callable_at(people(*rows), ALWAYS, utc("2026-06-11 00:30")).to_list()  # NY 20:30, Chicago 19:30
    assert result == [False, True, True] * 1000


@settings(max_examples=40, deadline=None)
@given(
    minutes=st.integers(min_value=0, max_value=13 * 24 * 60),
    zones=st.sampled_from([[NEW_YORK], [CHICAGO], [NEW_YORK, CHICAGO], ["America/Los_Angeles"], ["Europe/London"]]),
    state=st.sampled_from([None, "FL", "TX", "UT", "RI"]),
)
def test_windows_computed_from_any_start_agree(minutes, zones, state):
    """The intervals from a start, the instant's own legality and the next opening from it say the same."""
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


# --- rule data: holidays, fixed clocks, Canada, the states researched ---------------------------------------

DENVER, TORONTO = "America/Denver", "America/Toronto"


@pytest.mark.parametrize(
    ("zone", "state", "day"),
    [
        (CHICAGO, "LA", "2026-02-17"),  # Mardi Gras (Louisiana's calendar)
        (CHICAGO, "AL", "2026-02-17"),  # Mardi Gras, closed statewide in Alabama (stricter reading)
        (CHICAGO, "LA", "2027-02-09"),
        (CHICAGO, "LA", "2026-04-03"),  # Good Friday
        (NEW_YORK, "RI", "2026-08-10"),  # Victory Day
        (NEW_YORK, "RI", "2027-08-09"),
        (DENVER, "UT", "2026-07-24"),  # Pioneer Day
        (DENVER, "UT", "2026-07-03"),  # Independence Day on a Saturday: observed Friday
        (CHICAGO, "AL", "2026-04-27"),  # Confederate Memorial Day (Alabama's calendar)
        (NEW_YORK, "PA", "2026-11-27"),  # day after Thanksgiving (Pennsylvania's calendar)
        (NEW_YORK, "PA", "2026-04-03"),  # Good Friday, a Pennsylvania legal holiday the library lacks
    ],
)
def test_state_holidays_are_closed_all_day(zone, state, day):
    frame = people(([zone], state, None), ([zone], None, None))
    noon_local = datetime.fromisoformat(f"{day} 12:00").replace(tzinfo=ZoneInfo(zone))
    assert callable_at(frame, ALWAYS, noon_local).to_list() == [False, True]
    start = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(zone))
    assert call_windows(frame.head(1), ALWAYS, start, days=1).is_empty()


@pytest.mark.parametrize("state", ["AL", "LA", "RI", "UT", "PA"])
def test_new_year_observed_in_the_previous_year_is_closed(state):
    """New Year's Day 2028 is a Saturday: observed on Friday 2027-12-31 (in the 2027 calendar)."""
    zone = {"AL": CHICAGO, "LA": CHICAGO, "UT": DENVER}.get(state, NEW_YORK)
    frame = people(([zone], None, state), ([zone], None, "CO"))
    friday_noon = datetime(2027, 12, 31, 12, tzinfo=ZoneInfo(zone))
    assert callable_at(frame, ALWAYS, friday_noon).to_list() == [False, True]
    thursday_noon = datetime(2027, 12, 30, 12, tzinfo=ZoneInfo(zone))
    assert callable_at(frame, ALWAYS, thursday_noon).to_list() == [True, True]
    # also over a span that starts before the year end
    windows = call_windows(frame.head(1), ALWAYS, utc("2027-12-29 00:00"), days=5)
    local_days = {w.astimezone(ZoneInfo(zone)).date().isoformat() for w in windows["opens_utc"]}
    assert "2027-12-31" not in local_days and "2027-12-30" in local_days


def test_mississippi_hours_are_central_standard_time_all_year():
    ms = people(([CHICAGO], "MS", None), ([CHICAGO], None, None))
    # 2026-07-15 (Wednesday), CDT = UTC-5, CST = UTC-6
    assert open_at(ms, "2026-07-15 13:30") == [False, True]  # 08:30 CDT = 07:30 CST
    assert open_at(ms, "2026-07-15 13:59") == [False, True]
    assert open_at(ms, "2026-07-15 14:00") == [True, True]  # 09:00 CDT = 08:00 CST
    assert open_at(ms, "2026-07-16 01:59") == [True, True]  # 20:59 CDT = 19:59 CST
    assert open_at(ms, "2026-07-16 02:00") == [False, False]  # 21:00 CDT = 20:00 CST: both end
    # in winter CST is the local clock: 08:00-20:00 local
    assert open_at(ms, "2026-01-14 14:00") == [True, True]  # 08:00 CST
    assert open_at(ms, "2026-01-15 01:59") == [True, True]  # 19:59 CST
    assert open_at(ms, "2026-01-15 02:00") == [False, True]  # 20:00 CST, 20:00 local
    # Sunday is read in CST too: no calls on Sunday 2026-07-19 (06:00 UTC Sunday to 06:00 UTC Monday)
    sunday = call_windows(ms.head(1), ALWAYS, utc("2026-07-19 06:00"), days=1)
    assert sunday.is_empty()
    # a Mississippi address with a zone further east: the CST hours and the local 08:00-21:00 intersect
    east = people(([NEW_YORK], None, "MS"))
    assert open_at(east, "2026-07-15 13:30") == [False]  # 09:30 EDT, 07:30 CST
    assert open_at(east, "2026-07-15 14:00") == [True]
    assert open_at(east, "2026-07-16 00:59") == [True]  # 20:59 EDT
    assert open_at(east, "2026-07-16 01:00") == [False]  # 21:00 EDT (19:00 CST)


def test_canadian_contacts_get_canadas_telemarketing_hours():
    by_province = people(([TORONTO], "ON", None))
    by_number = people(([TORONTO], None, None, None, "CA"))
    by_country = people(([TORONTO], None, None, "Canada"))
    for frame in (by_province, by_number, by_country):
        # Wednesday 2026-06-10, EDT = UTC-4
        assert open_at(frame, "2026-06-11 00:59") == [True]  # 20:59 local
        assert open_at(frame, "2026-06-11 01:00") == [False]  # 21:00: the US end binds Canadian contacts too
        assert open_at(frame, "2026-06-11 01:15") == [False]  # 21:15: open under the CRTC rules alone
        assert open_at(frame, "2026-06-10 12:59") == [False]  # 08:59
        assert open_at(frame, "2026-06-10 13:00") == [True]  # 09:00
        # Saturday 2026-06-13
        assert open_at(frame, "2026-06-13 22:30") == [False]  # 18:30 local
        assert open_at(frame, "2026-06-13 21:59") == [True]  # 17:59
        assert open_at(frame, "2026-06-13 13:30") == [False]  # 09:30
        assert open_at(frame, "2026-06-14 14:00") == [True]  # Sunday 10:00
    # tied to both countries (a Canadian number, a US address): both apply
    both = people(([TORONTO], None, "NY", None, "CA"))
    assert open_at(both, "2026-06-11 01:15") == [False]  # 21:15: the US 21:00 end
    assert open_at(both, "2026-06-10 12:30") == [False]  # 08:30: Canada's 09:00 start
    assert open_at(both, "2026-06-13 22:30") == [False]  # Saturday 18:30
    # a US number in a US state is not Canadian
    assert open_at(people(([NEW_YORK], "NY", None, None, "US")), "2026-06-13 22:30") == [True]
    keys = window_keys(pl.concat([by_province, by_number, both]))
    assert [key.rsplit(";", 1)[1] for key in keys] == ["CA", "CA", "CA|US"]


@pytest.mark.parametrize(
    ("state", "zone", "closed_local", "open_local"),
    [
        ("KY", NEW_YORK, ["09:59", "21:00"], ["10:00", "20:59"]),  # KRS 367.46955(15): 10 a.m. to 9 p.m.
        ("MI", NEW_YORK, ["07:59", "21:00"], ["08:00", "20:59"]),  # no state limit found: the US hours
        ("MN", CHICAGO, ["08:59", "21:00"], ["09:00", "20:59"]),  # Minn. Stat. 325E.30: 9 a.m. to 9 p.m.
        ("NV", "America/Los_Angeles", ["08:59", "21:00"], ["09:00", "20:59"]),  # NRS 597.814: 9 a.m. to 9 p.m.
        ("NM", DENVER, ["08:59", "21:00"], ["09:00", "20:59"]),  # N.M. Stat. 57-12-22(B)(5)
        ("PA", NEW_YORK, ["07:59", "21:00"], ["08:00", "20:59"]),
        ("WA", "America/Los_Angeles", ["07:59", "20:00"], ["08:00", "19:59"]),
    ],
)
def test_researched_state_hours(state, zone, closed_local, open_local):
    frame = people(([zone], state, None))
    for clock, expected in [(t, False) for t in closed_local] + [(t, True) for t in open_local]:
        local = datetime.fromisoformat(f"2026-06-10 {clock}").replace(tzinfo=ZoneInfo(zone))  # a Wednesday
        assert callable_at(frame, ALWAYS, local).to_list() == [expected], (state, clock)


def test_every_rule_has_a_citation_and_the_researched_states_are_there():
    rules = calling_rules()
    assert {"KY", "MI", "MN", "NV", "NM", "PA", "MS", "ON"} <= set(rules.states)
    assert all(rule.citation for rule in (*rules.states.values(), *rules.countries.values()))
    assert rules.states["ON"].country == "CA" and rules.states["MS"].clock is not None
    assert rules.state_names["KENTUCKY"] == "KY"


def test_last_call_minutes_close_each_interval_early():
    frame = people(([NEW_YORK], None, None), ([NEW_YORK], "FL", None))
    office = CallingWindow(start="09:00", end="17:00", days=WEEKDAYS, last_call_minutes=30)
    assert open_at(frame, "2026-06-10 20:29", office) == [True, True]  # 16:29 EDT
    assert open_at(frame, "2026-06-10 20:30", office) == [False, False]  # 16:30
    late = CallingWindow(start="00:00", end="24:00", days=WEEKDAYS, last_call_minutes=45)
    intervals = call_windows(frame, late, utc("2026-06-10 04:00"), days=1)
    closes = dict(zip(intervals["contact_id"], intervals["closes_utc"], strict=True))
    assert closes["c0"] == utc("2026-06-11 00:15")  # 21:00 - 45 minutes = 20:15 EDT
    assert closes["c1"] == utc("2026-06-10 23:15")  # Florida's 20:00 - 45 minutes
    # an interval cut by the end of the span closes as if it went on: never later than the full computation
    cut = call_windows(frame.head(1), late, utc("2026-06-10 04:00"), days=1).filter(pl.col("contact_id") == "c0")
    assert cut["closes_utc"].max() <= utc("2026-06-11 00:15")
    # longer than the interval: nothing left
    never = CallingWindow(start="09:00", end="10:00", days=WEEKDAYS, last_call_minutes=60)
    assert call_windows(frame, never, utc("2026-06-10 00:00"), days=3).is_empty()


def test_not_after_cuts_the_intervals_at_that_instant():
    frame = people(([NEW_YORK], None, None))
    limit = utc("2026-06-11 15:00")
    intervals = call_windows(frame, ALWAYS, utc("2026-06-10 00:00"), days=5, not_after=limit)
    assert intervals["closes_utc"].max() == limit and intervals.height == 3  # 06-09 evening, 06-10, 06-11 cut
    by_key = call_windows_for_keys(window_keys(frame).to_list(), ALWAYS, utc("2026-06-10 00:00"), 5, not_after=limit)
    assert by_key["closes_utc"].max() == limit


def test_keys_of_the_older_form_and_foreign_keys():
    assert call_windows_for_keys([f"{NEW_YORK};FL"], ALWAYS, utc("2026-06-10 00:00"), 1)["closes_utc"].to_list() == [
        utc("2026-06-11 00:00")
    ]
    assert call_windows_for_keys(["v1:spring-000001:c1"], ALWAYS, utc("2026-06-10 00:00"), 1).is_empty()


# --- the rule file: overrides and failing closed --------------------------------------------------------------

BUNDLED = Path(__file__).parents[2] / "callaro_pipeline" / "core" / "reference" / "calling_rules.yaml"


def _rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calling_rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "line", "fragment"),
    [
        (("  FL:\n", "  FL:\n    colour: blue\n"), None, "unknown key 'colour'"),
        (('    end: "20:00"\n', "    end: 20:00\n"), None, "must be quoted"),
        (('    start: "10:00"\n', '    start: "10:75"\n'), None, "HH:MM"),
        (("  KY:\n", "  KY:\n  - [broken\n"), None, "not valid YAML"),
        (("{country: US, subdiv: RI}", "{country: US, subdiv: XX}"), None, "no such calendar"),
        (('    clock: "UTC-06:00"\n', '    clock: "CST"\n'), None, "fixed clock"),
    ],
)
def test_a_broken_rule_file_fails_closed_with_file_and_line(tmp_path, monkeypatch, change, line, fragment):
    text = BUNDLED.read_text(encoding="utf-8")
    old, new = change
    assert old in text
    broken = text.replace(old, new, 1)
    expected_line = text[: text.index(old)].count("\n") + 1 + (1 if new.startswith(old) else 0)
    monkeypatch.setenv("CALLARO_CALLING_RULES", str(_rules_file(tmp_path, broken)))
    frame = people(([NEW_YORK], "FL", None))
    with pytest.raises(ConfigError) as raised:
        window_keys(frame)
    message = str(raised.value)
    assert "calling_rules.yaml line " in message and fragment in message, message
    reported = int(message.split(" line ", 1)[1].split(":", 1)[0])
    assert abs(reported - expected_line) <= 1, (message, expected_line)
    with pytest.raises(ConfigError):
        call_windows_for_keys([], ALWAYS, utc("2026-06-10 00:00"))


def test_a_missing_rule_file_fails_closed(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLARO_CALLING_RULES", str(tmp_path / "nowhere.yaml"))
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        window_keys(people(([NEW_YORK], None, None)))


def test_the_compliance_owners_rule_file_under_callaro_config_replaces_the_bundled_one(tmp_path, monkeypatch):
    monkeypatch.delenv("CALLARO_CALLING_RULES", raising=False)
    stricter = BUNDLED.read_text(encoding="utf-8").replace(
        '  FL:\n    name: Florida\n    start: "08:00"\n    end: "20:00"',
        '  FL:\n    name: Florida\n    start: "08:00"\n    end: "19:00"',
    )
    (tmp_path / "campaigns").mkdir()
    _rules_file(tmp_path, stricter)
    monkeypatch.setenv("CALLARO_CONFIG", str(tmp_path))
    assert rules_path() == tmp_path / "calling_rules.yaml"
    frame = people(([NEW_YORK], "FL", None))
    assert open_at(frame, "2026-06-10 23:30") == [False]  # 19:30 EDT
    (tmp_path / "calling_rules.yaml").unlink()
    assert rules_path() == BUNDLED.resolve() or rules_path() == BUNDLED
    assert open_at(frame, "2026-06-10 23:30") == [True]


@pytest.mark.parametrize(
    ("window", "fragment"),
    [
        ({"start": 600}, "window.start is 600"),
        ({"end": "25:00"}, "window.end"),
        ({"last_call_minutes": "ten"}, "last_call_minutes"),
        ({"last_call_minutes": -5}, "last_call_minutes"),
        ({"last_call_minutes": True}, "last_call_minutes"),
        ({"days": "mon"}, "window.days"),
        ({"colour": "red"}, "unknown key"),
    ],
)
def test_a_wrong_campaign_window_is_refused_with_file_key_and_value(tmp_path, monkeypatch, window, fragment):
    from callaro_pipeline.core.config import load_campaign

    monkeypatch.setenv("CALLARO_CONFIG", str(tmp_path))
    monkeypatch.setenv("CALLARO_HOME", str(tmp_path / "home"))
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "spring.yaml").write_text(
        yaml.safe_dump({"name": "spring", "window": window}), encoding="utf-8"
    )
    with pytest.raises(ConfigError) as raised:
        load_campaign("spring")
    assert "spring.yaml" in str(raised.value) and fragment in str(raised.value), str(raised.value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"duplicates": "keep"}, "duplicates is 'keep' (expected one of suppress, merge, split)"),
        ({"max_rejected_share": "lots"}, "max_rejected_share is 'lots' (expected a number)"),
        ({"audience": {"segments": "vip"}}, "audience.segments is 'vip' (expected a list of segment names)"),
        ({"audience": "all"}, "audience is 'all' (expected a mapping of uploads, segments)"),
        (
            {"agent_variables": [{"name": "first", "source": "crm"}]},
            "agent_variables[0].source is 'crm' (expected one of field, custom, static)",
        ),
        ({"agent_variables": [{"name": "first", "source": "field", "colour": 1}]}, "has unknown key(s) colour"),
        (
            {"duplicates": "keep", "window": {"days": ["mon", "someday"]}},
            "duplicates is 'keep' (expected one of suppress, merge, split); campaign file spring.yaml: window.days is",
        ),
    ],
)
def test_every_problem_of_a_campaign_file_is_named_with_file_key_and_value(tmp_path, monkeypatch, settings, message):
    from callaro_pipeline.core.config import load_campaign

    monkeypatch.setenv("CALLARO_CONFIG", str(tmp_path))
    monkeypatch.setenv("CALLARO_HOME", str(tmp_path / "home"))
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "spring.yaml").write_text(yaml.safe_dump({"name": "spring", **settings}), "utf-8")
    with pytest.raises(ConfigError) as raised:
        load_campaign("spring")
    assert str(raised.value).startswith("campaign file spring.yaml: "), str(raised.value)
    assert message in str(raised.value) and "\n" not in str(raised.value), str(raised.value)


def test_an_unquoted_time_in_a_campaign_file_is_refused(tmp_path, monkeypatch):
    from callaro_pipeline.core.config import load_campaign

    monkeypatch.setenv("CALLARO_CONFIG", str(tmp_path))
    monkeypatch.setenv("CALLARO_HOME", str(tmp_path / "home"))
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "spring.yaml").write_text("name: spring\nwindow:\n  start: 10:00\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"spring\.yaml: window\.start is 600.*\"10:00\""):
        load_campaign("spring")
    (tmp_path / "campaigns" / "spring.yaml").write_text(
        'name: spring\nwindow:\n  start: "10:00"\n  last_call_minutes: 15\n', encoding="utf-8"
    )
    window = load_campaign("spring").window
    assert (window.start, window.last_call_minutes) == ("10:00", 15)


# --- property: open only when legal in every candidate zone under every applicable rule -----------------------
NA_ZONES = [
    NEW_YORK,
    CHICAGO,
    DENVER,
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Halifax",
    "America/St_Johns",
    TORONTO,
    "America/Regina",
    "America/Puerto_Rico",
]
# An independent statement of the rules the property draws from (weekday index: Monday 0 ... Sunday 6):
# state -> (hours by weekday or None = closed, holiday subdivision or None, fixed UTC offset in hours or None).
DAY = ((8 * 60, 21 * 60),) * 7
REFERENCE_STATES = {
    "FL": (((8 * 60, 20 * 60),) * 7, None, None),
    "TX": (((9 * 60, 21 * 60),) * 6 + ((12 * 60, 21 * 60),), None, None),
    "KY": (((10 * 60, 21 * 60),) * 7, None, None),
    "MN": (((9 * 60, 21 * 60),) * 7, None, None),
    "RI": (((9 * 60, 18 * 60),) * 5 + ((10 * 60, 17 * 60), None), "RI", None),
    "UT": (((8 * 60, 21 * 60),) * 6 + (None,), "UT", None),
    "MS": (((8 * 60, 20 * 60),) * 6 + (None,), None, -6),
    "NY": (DAY, None, None),
    "ON": (((0, 24 * 60),) * 7, None, None),
}
# Candidate zones that occur together (a number and an address near a zone line).
NEIGHBOUR_ZONES = [
    [NEW_YORK, CHICAGO],
    [CHICAGO, DENVER],
    [DENVER, "America/Phoenix"],
    ["America/Los_Angeles", "America/Phoenix"],
    ["America/Halifax", "America/St_Johns"],
    [NEW_YORK, TORONTO],
    ["America/Halifax", "America/Puerto_Rico"],
]
# Local minutes just before and at the edges the rules draw (and an hour either side, for zones an hour apart).
BOUNDARY_MINUTES = sorted(
    {
        edge + delta
        for edge in (8 * 60, 9 * 60, 10 * 60, 12 * 60, 17 * 60, 18 * 60, 20 * 60, 21 * 60, 21 * 60 + 30)
        for delta in (-61, -60, -1, 0, 59, 60)
    }
)
CANADA_HOURS = ((9 * 60, 21 * 60 + 30),) * 5 + ((10 * 60, 18 * 60),) * 2
US_HOURS = DAY


def _within(hours: tuple | None, minute: int) -> bool:
    return hours is not None and hours[0] <= minute < hours[1]


def reference_open(zones, states, country, region, window: CallingWindow, instant: datetime) -> bool:
    """Minute-level legality at `instant`, written with zoneinfo and the holidays package directly."""
    if not zones:
        return False
    countries = {"CA" if state == "ON" else "US" for state in states}
    countries |= {"US": {"US"}, "Canada": {"CA"}}.get(country, set())
    countries |= {"US": {"US"}, "CA": {"CA"}}.get(region, set())
    countries |= {"US"}  # the US hours bind every call, Canada's narrow them
    campaign_start = int(window.start[:2]) * 60 + int(window.start[3:])
    campaign_end = int(window.end[:2]) * 60 + int(window.end[3:])
    for zone in zones:
        local = instant.astimezone(ZoneInfo(zone))
        minute, weekday = local.hour * 60 + local.minute, local.weekday()
        if "US" in countries and not _within(US_HOURS[weekday], minute):
            return False
        if "CA" in countries and not _within(CANADA_HOURS[weekday], minute):
            return False
        if WEEKDAYS[weekday] not in window.days or not campaign_start <= minute < campaign_end:
            return False
        for state in states:
            hours, subdiv, offset = REFERENCE_STATES[state]
            clock = local if offset is None else (instant.astimezone(UTC) + timedelta(hours=offset))
            if subdiv and clock.date() in holiday_calendars.country_holidays(
                "US", subdiv=subdiv, years=range(clock.year - 1, clock.year + 2), observed=True
            ):
                return False
            if not _within(hours[clock.weekday()], clock.hour * 60 + clock.minute):
                return False
    return True


@settings(max_examples=300, deadline=None)
# the edges named in the contract, always tried: Mississippi's CST in July (08:30 CDT closed, 09:00 open, 21:00 end),
# Canada at 21:15 on a weekday and 18:30 on a Saturday, Phoenix without DST, New Year's Day 2028 observed in Utah
@example([CHICAGO], ["MS"], None, None, ALWAYS, 195, 8 * 60 + 30, 3)
@example([CHICAGO], ["MS"], None, None, ALWAYS, 195, 9 * 60, 3)
@example([CHICAGO], ["MS"], None, None, ALWAYS, 195, 20 * 60 + 59, 3)
@example([TORONTO], ["ON"], None, "CA", ALWAYS, 160, 21 * 60 + 15, 30)  # closed: the US 21:00 end
@example([TORONTO], [], "Canada", None, ALWAYS, 163, 18 * 60 + 30, 30)
@example(["America/Phoenix", DENVER], ["TX"], None, None, ALWAYS, 180, 8 * 60 + 30, 0)
@example([DENVER], ["UT"], None, None, ALWAYS, 729, 12 * 60, 50)
@example([NEW_YORK], ["MN", "KY"], "Canada", None, ALWAYS, 0, 9 * 60, 0)  # a Canadian row keeps Kentucky's 10:00
@given(
    zones=st.one_of(
        st.sampled_from(NA_ZONES).map(lambda zone: [zone]),
        st.sampled_from(NEIGHBOUR_ZONES),
        st.lists(st.sampled_from(NA_ZONES), max_size=3, unique=True),
    ),
    states=st.lists(st.sampled_from(sorted(REFERENCE_STATES)), min_size=1, max_size=2, unique=True)
    | st.just([]),  # area code, address
    country=st.sampled_from([None, "US", "Canada"]),
    region=st.sampled_from([None, "US", "CA"]),
    window=st.one_of(
        st.sampled_from([ALWAYS, CallingWindow(start="08:00", end="21:00", days=WEEKDAYS)]),
        st.builds(
            CallingWindow,
            start=st.sampled_from(["00:00", "08:30", "09:00", "10:15", "12:00"]),
            end=st.sampled_from(["17:00", "20:00", "20:45", "21:30", "24:00"]),
            days=st.one_of(
                st.just(WEEKDAYS),
                st.sets(st.sampled_from(WEEKDAYS), min_size=1).map(lambda d: tuple(sorted(d, key=WEEKDAYS.index))),
            ),
        ),
    ),
    day=st.integers(min_value=0, max_value=2 * 365 - 1),
    local_minute=st.one_of(st.sampled_from(BOUNDARY_MINUTES), st.integers(min_value=0, max_value=24 * 60 - 1)),
    lead_hours=st.integers(min_value=0, max_value=60),
)
def test_callable_only_when_legal_in_every_zone_under_every_rule(
    zones, states, country, region, window, day, local_minute, lead_hours
):
    """Instants over 2026-2027, drawn near the edges of the rules in the first candidate zone half the time."""
    zone = ZoneInfo(zones[0]) if zones else UTC
    midnight = datetime(2026, 1, 1, tzinfo=zone) + timedelta(days=day)
    instant = (midnight + timedelta(minutes=local_minute)).astimezone(UTC)
    phone_state, address_state = [*states, None, None][:2]
    frame = people((zones, phone_state, address_state, country, region))
    # a US or Canadian `country` keeps the other country's address state too (places.rule_states: stricter)
    expected = reference_open(zones, states, country, region, window, instant)
    assert callable_at(frame, window, instant).to_list() == [expected]
    # the stored intervals say the same, computed from a start some hours earlier
    intervals = call_windows(frame, window, instant - timedelta(hours=lead_hours), days=4)
    inside = intervals.filter((pl.col("opens_utc") <= instant) & (instant < pl.col("closes_utc"))).height > 0
    assert inside == expected


def test_the_zips_state_applies_too():
    """A Miami ZIP with a New York number and no state column gets Florida's 20:00 end (places.rule_states)."""
    frame = people(([NEW_YORK], "NY", None, None, "US", "33101"), ([NEW_YORK], "NY", None, None, "US", "10001"))
    assert open_at(frame, "2026-06-11 00:30") == [False, True]  # 20:30 EDT
    # the key names the states with rules of their own (New York has none beyond the US hours)
    assert [key.split(";")[1] for key in window_keys(frame)] == ["FL", ""]

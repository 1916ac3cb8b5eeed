"""The compliance audit (tools/compliance_audit.py): its reference checker on known intervals, and a small
end-to-end run through the real CLI that must find 0 illegal minutes."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from callaro_pipeline.core.project_paths import PROJECT_ROOT


def _load_audit():
    path = PROJECT_ROOT / "tools" / "compliance_audit.py"
    spec = importlib.util.spec_from_file_location("compliance_audit", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["compliance_audit"] = module
    spec.loader.exec_module(module)
    return module


audit = _load_audit()
START = date(2026, 1, 1)
DAYS = 730


def _epoch(local: str, zone: str) -> int:
    return int(datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).timestamp())


def illegal_minutes(zones, states, canada, opens_local: str, closes_local: str, zone: str) -> float:
    """Illegal minutes of one interval given in `zone`'s local time."""
    legal = audit.legal_intervals(zones, states, canada, START, DAYS)
    opens = np.array([_epoch(opens_local, zone)], dtype=np.int64)
    closes = np.array([_epoch(closes_local, zone)], dtype=np.int64)
    return float((closes - opens - audit.legal_overlap(legal, opens, closes))[0]) / 60


def test_a_legal_interval_is_not_counted():
    assert (
        illegal_minutes(["America/New_York"], ["NY"], False, "2026-01-05 10:00", "2026-01-05 11:00", "America/New_York")
        == 0
    )


def test_minutes_after_21_00_local_are_counted():
    assert (
        illegal_minutes(["America/New_York"], ["NY"], False, "2026-01-05 20:30", "2026-01-05 21:30", "America/New_York")
        == 30
    )


def test_every_truth_zone_counts_a_person_who_moved():
    # 08:30 in New York is 05:30 in Los Angeles: illegal for a person who may be in either
    assert (
        illegal_minutes(
            ["America/New_York", "America/Los_Angeles"],
            ["NY", "CA"],
            False,
            "2026-03-02 08:30",
            "2026-03-02 09:30",
            "America/New_York",
        )
        == 60
    )


def test_dst_day_opens_at_08_00_daylight_time():
    # 2026-03-08: New York springs forward; 07:00-08:00 EDT is illegal, 08:00-09:00 EDT legal
    assert (
        illegal_minutes(["America/New_York"], [], False, "2026-03-08 07:00", "2026-03-08 09:00", "America/New_York")
        == 60
    )


def test_texas_sunday_opens_at_noon():
    assert (
        illegal_minutes(["America/Chicago"], ["TX"], False, "2026-01-04 10:00", "2026-01-04 13:00", "America/Chicago")
        == 120
    )
    assert (
        illegal_minutes(["America/Chicago"], ["TX"], False, "2026-01-05 10:00", "2026-01-05 13:00", "America/Chicago")
        == 0
    )


def test_state_of_the_area_code_applies_with_the_strictest_hours():
    # Florida 20:00 end, Kentucky 10:00 start
    assert (
        illegal_minutes(
            ["America/New_York"], ["NY", "FL"], False, "2026-01-05 19:30", "2026-01-05 20:30", "America/New_York"
        )
        == 30
    )
    assert (
        illegal_minutes(["America/Chicago"], ["KY"], False, "2026-01-05 09:00", "2026-01-05 11:00", "America/Chicago")
        == 60
    )


def test_mississippi_hours_are_central_standard_time():
    # In July 20:30 CDT is 19:30 CST (legal); 08:30 CDT is 07:30 CST (illegal); Sunday closed
    assert (
        illegal_minutes(["America/Chicago"], ["MS"], False, "2026-07-06 20:00", "2026-07-06 21:00", "America/Chicago")
        == 0
    )
    assert (
        illegal_minutes(["America/Chicago"], ["MS"], False, "2026-07-06 08:30", "2026-07-06 09:30", "America/Chicago")
        == 30
    )
    assert (
        illegal_minutes(["America/Chicago"], ["MS"], False, "2026-07-05 12:00", "2026-07-05 13:00", "America/Chicago")
        == 60
    )


def test_state_holidays_with_observed_days_across_a_year_end():
    # Rhode Island: Victory Day (2nd Monday of August) and New Year's Day 2028 observed on Fri 2027-12-31
    for day in ("2027-08-09", "2027-12-31"):
        assert (
            illegal_minutes(["America/New_York"], ["RI"], False, f"{day} 10:00", f"{day} 11:00", "America/New_York")
            == 60
        )
    # Louisiana: Mardi Gras 2026-02-17
    assert (
        illegal_minutes(["America/Chicago"], ["LA"], False, "2026-02-17 10:00", "2026-02-17 11:00", "America/Chicago")
        == 60
    )
    assert (
        illegal_minutes(["America/Chicago"], ["LA"], False, "2026-02-18 10:00", "2026-02-18 11:00", "America/Chicago")
        == 0
    )


def test_canadian_contacts_get_crtc_hours():
    zone = "America/Toronto"
    # 08:00-21:00 everywhere, narrowed by CRTC: weekdays from 09:00, weekends 10:00-18:00
    assert illegal_minutes([zone], ["ON"], True, "2026-01-05 20:00", "2026-01-05 21:30", zone) == 30
    assert illegal_minutes([zone], ["ON"], True, "2026-01-05 08:30", "2026-01-05 09:30", zone) == 30
    assert illegal_minutes([zone], ["ON"], True, "2026-01-10 17:30", "2026-01-10 18:30", zone) == 30


def test_count_illegal_sums_per_contact_and_keeps_contacts_without_windows():
    truth = pl.DataFrame(
        {
            "phone_e164": ["+12125550100", "+12125550101"],
            "kind": ["local", "moved"],
            "zones": [["America/New_York"], ["America/New_York", "America/Los_Angeles"]],
            "states": [["NY"], ["NY", "CA"]],
            "canada": [False, False],
        }
    )
    windows = pl.DataFrame(
        {
            "phone_e164": ["+12125550100", "+12125550100"],
            "opens": [_epoch("2026-01-05 10:00", "America/New_York"), _epoch("2026-01-05 20:00", "America/New_York")],
            "closes": [_epoch("2026-01-05 11:00", "America/New_York"), _epoch("2026-01-05 22:00", "America/New_York")],
        }
    )
    per = audit.count_illegal(windows, truth, START, DAYS).sort("phone_e164")
    assert per["illegal_s"].to_list() == [3600, 0]
    assert per["open_s"].to_list() == [3 * 3600, 0]


def test_zone_confusion_compares_by_clock():
    clocks = audit.Clocks(START, DAYS)
    verdicts = audit.confusion(
        [
            ["America/Indiana/Indianapolis"],
            ["America/Chicago"],
            ["America/New_York", "America/Chicago"],
            ["America/Phoenix"],
        ],
        [["America/New_York"], ["America/Chicago", "America/New_York"], ["America/New_York"], None],
        clocks,
    )
    assert verdicts == ["exact", "superset", "wrong", "unknown"]
    assert clocks.label("America/Creston") == clocks.label("America/Phoenix") != clocks.label("America/Denver")


def test_phone_states_come_from_the_geocoder():
    assert audit.phone_states("+12704421234") == {"KY"}
    assert audit.phone_states("+13643379141") == {"KY"}
    assert audit.phone_states("+18005551234") == set()


@pytest.mark.slow
def test_small_audit_through_the_real_cli_finds_no_illegal_minute(tmp_path: Path):
    # run_audit itself stops (SystemExit) if `callaro audience --windows` is missing
    result = audit.run_audit(150, 11, START, 30, keep=tmp_path / "run", verbose=False)
    passes = result["passes"]
    assert all(p.audience > 0 for p in passes)
    leaks = passes[0].per_contact.filter(pl.col("illegal_s") > 0)
    assert result["illegal_seconds"] == 0, leaks.to_dicts()[:5]


def test_epoch_helper_is_utc():
    assert _epoch("2026-01-01 00:00", "UTC") == int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())

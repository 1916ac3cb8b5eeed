"""`callaro audience CAMPAIGN --windows [--from] [--days] --out FILE.parquet`, end to end through the CLI, and a
rule file that does not parse stopping the audience build (fail closed, with file and line)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from callaro_pipeline.core.project_paths import PROJECT_ROOT
from callaro_pipeline_tests.conftest import write_csv
from callaro_pipeline_tests.e2e.test_cli import cli, imported, write_campaign

HEADER = ["First Name", "Phone Number", "State", "ZIP"]
ROWS = [
    ["Nora", "(212) 555-0101", "NY", "10001"],  # New York
    ["Flo", "(305) 555-0102", "FL", "33101"],  # Florida: 20:00
    ["Miles", "(601) 555-0104", "MS", "39201"],  # Mississippi: 08:00-20:00 CST, no Sunday
]
ALL_HOURS = {"start": "00:00", "end": "24:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("windows")
    home, config, files = root / "home", root / "config", root / "files"
    (home / "dagster").mkdir(parents=True)
    files.mkdir()
    shutil.copytree(PROJECT_ROOT / "config", config)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CALLARO_HOME", str(home))
        mp.setenv("CALLARO_CONFIG", str(config))
        mp.setenv("DAGSTER_HOME", str(home / "dagster"))
        mp.delenv("CALLARO_CALLING_RULES", raising=False)
        write_campaign(config, "win", window=ALL_HOURS)
        summary = imported(write_csv(files / "win.csv", HEADER, ROWS), "--campaign", "win")
        yield SimpleNamespace(root=root, home=home, config=config, files=files, summary=summary, mp=mp)


def export(env, *args: object) -> tuple[object, pl.DataFrame | None]:
    out = env.files / f"windows_{len(list(env.files.glob('windows_*')))}.parquet"
    ran = cli("audience", "win", "--windows", *args, "--out", out)
    return ran, (pl.read_parquet(out) if out.exists() else None)


def local_hours(frame: pl.DataFrame, phone: str, zone: str) -> set[tuple[str, str]]:
    rows = frame.filter(pl.col("phone_e164") == phone)
    tz = ZoneInfo(zone)
    return {
        (opens.astimezone(tz).strftime("%H:%M"), closes.astimezone(tz).strftime("%H:%M"))
        for opens, closes in rows.select("opens_utc", "closes_utc").iter_rows()
    }


def test_windows_export_has_each_members_intervals_in_utc(env) -> None:
    assert env.summary["audience"]["callable"] == 3, env.summary["audience"]
    ran, frame = export(env, "--from", "2026-07-13", "--days", "7")  # Monday 2026-07-13 to Sunday 2026-07-19
    assert ran.code == 0, ran.err
    assert "written to" in ran.out and ran.err == ""
    assert frame.columns == ["contact_id", "phone_e164", "opens_utc", "closes_utc"]
    assert (
        frame.schema["opens_utc"] == pl.Datetime("us", "UTC")
        and frame.schema["closes_utc"] == frame.schema["opens_utc"]
    )
    assert (frame["opens_utc"] < frame["closes_utc"]).all()
    assert frame["opens_utc"].min() >= datetime(2026, 7, 13, tzinfo=UTC)
    assert frame["closes_utc"].max() <= datetime(2026, 7, 20, tzinfo=UTC)
    assert local_hours(frame, "+12125550101", "America/New_York") >= {("08:00", "21:00")}
    assert local_hours(frame, "+13055550102", "America/New_York") >= {("08:00", "20:00")}
    # Mississippi: 08:00-20:00 Central Standard Time = 09:00-21:00 CDT in July, and no Sunday (in CST)
    assert local_hours(frame, "+16015550104", "America/Chicago") >= {("09:00", "21:00")}
    ms_days = {
        opens.astimezone(ZoneInfo("Etc/GMT+6")).weekday()
        for (opens,) in frame.filter(pl.col("phone_e164") == "+16015550104").select("opens_utc").iter_rows()
    }
    assert 6 not in ms_days and len(ms_days) == 6


def test_the_default_span_is_fourteen_days_from_today(env) -> None:
    ran, frame = export(env)
    assert ran.code == 0, ran.err
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert frame["opens_utc"].min() >= today
    assert frame["closes_utc"].max() <= today + timedelta(days=14)
    assert frame["closes_utc"].max() > today + timedelta(days=12)


def test_a_number_listed_after_the_build_is_not_in_the_export(env) -> None:
    ran = cli("dnc", "add", "(305) 555-0102", "--reason", "asked not to be called")
    assert ran.code == 0, ran.err
    ran, frame = export(env, "--from", "2026-07-13", "--days", "2")
    assert ran.code == 0, ran.err
    assert "+13055550102" not in set(frame["phone_e164"])
    assert {"+12125550101", "+16015550104"} <= set(frame["phone_e164"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--windows", "--days", "731", "--out", "x.parquet"], "--days"),
        (["--windows", "--days", "0", "--out", "x.parquet"], "--days"),
        (["--windows", "--days", "ten", "--out", "x.parquet"], "--days"),
        (["--windows", "--from", "2026-13-01", "--out", "x.parquet"], "--from"),
        (["--windows"], "--out"),
        (["--windows", "--out", "x.csv"], ".parquet"),
        (["--days", "3"], "--windows"),
    ],
)
def test_bad_windows_arguments_exit_2_with_one_line(env, args: list[str], fragment: str) -> None:
    ran = cli("audience", "win", *[str(env.files / a) if a.startswith("x.") else a for a in args])
    assert ran.code == 2
    assert len(ran.err.strip().splitlines()) == 1 and fragment in ran.err, ran.err
    assert not list(env.files.glob("x.*"))


def test_at_most_730_days(env) -> None:
    ran, frame = export(env, "--from", "2026-01-01", "--days", "730")
    assert ran.code == 0, ran.err
    assert frame["closes_utc"].max() <= datetime(2028, 1, 1, tzinfo=UTC)
    assert frame["opens_utc"].min() >= datetime(2026, 1, 1, tzinfo=UTC)


def test_a_broken_rule_file_stops_every_audience_build_with_file_and_line(env) -> None:
    rules = (PROJECT_ROOT / "callaro_pipeline" / "core" / "reference" / "calling_rules.yaml").read_text(
        encoding="utf-8"
    )
    broken = env.config / "calling_rules.yaml"  # the compliance owner's copy overrides the bundled file
    broken.write_text(rules.replace('    end: "20:00"\n', "    end: 20:00\n", 1), encoding="utf-8")
    line = rules[: rules.index('    end: "20:00"\n')].count("\n") + 1
    try:
        ran = cli(
            "import",
            write_csv(env.files / "more.csv", HEADER, [["Ann", "(212) 555-0109", "NY", ""]]),
            "--campaign",
            "win",
            "--json",
        )
        audience = ran.json()["audience"]
        assert audience["status"] == "not_built", audience
        assert f"calling_rules.yaml line {line}" in audience["reason"], audience
        ran = cli("audience", "win", "--windows", "--out", env.files / "broken.parquet")
        assert ran.code == 2 and f"calling_rules.yaml line {line}" in ran.err, ran.err
        assert not (env.files / "broken.parquet").exists()
    finally:
        broken.unlink()
    ran, frame = export(env, "--from", "2026-07-13", "--days", "1")
    assert ran.code == 0 and frame.height > 0, ran.err

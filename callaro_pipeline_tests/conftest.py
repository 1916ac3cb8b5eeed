"""Shared fixtures: a fresh, independent installation per test (CALLARO_HOME + CALLARO_CONFIG in tmp_path)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Three test workers share two cores: with one DuckDB and one polars thread each, an import costs ~25% less CPU
# than with a thread per core (no worker threads woken for small statements). Set before polars is imported;
# the `callaro` processes the tests start inherit both.
os.environ.setdefault("CALLARO_THREADS", "1")
os.environ.setdefault("POLARS_MAX_THREADS", "1")

from callaro_pipeline.core.project_paths import PROJECT_ROOT  # noqa: E402


def install_callaro_env(base: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty CALLARO_HOME and a copy of the project's config under `base`; returns the home folder."""
    home = base / "home"
    config = base / "config"
    (home / "dagster").mkdir(parents=True)
    shutil.copytree(PROJECT_ROOT / "config", config)
    monkeypatch.setenv("CALLARO_HOME", str(home))
    monkeypatch.setenv("CALLARO_CONFIG", str(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    return home


@pytest.fixture(scope="session", autouse=True)
def ad_hoc_campaign_defaults() -> Iterator[dict]:
    """Tests import into campaigns named on the fly and check their contacts and audiences: they run as an
    installation whose compliance owner's defaults (what `_defaults.yaml` would say) require neither the national
    list nor consent. Tests marked `safe_defaults` (and every real installation) get the built-in safe defaults.
    Session-wide, so module fixtures that import are covered too."""
    from callaro_pipeline.core import config

    built_in = config.SAFE_DEFAULTS
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config, "SAFE_DEFAULTS", {"require_national_dnc": False, "require_consent": False})
        yield built_in


@pytest.fixture(scope="session", autouse=True)
def great_expectations_loaded_here() -> None:
    """A test worker is one long-lived process that runs many imports in process: GX is imported here once, so
    those imports validate here (as a long-lived process does) instead of each spawning a side process that
    imports GX again (~5 s of CPU per import). The side process has its own tests (unit/test_gates.py), and the
    `callaro` commands the suite runs as subprocesses use it as users' commands do."""
    import great_expectations  # noqa: F401


@pytest.fixture(autouse=True)
def safe_defaults_when_marked(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, ad_hoc_campaign_defaults: dict
) -> None:
    if request.node.get_closest_marker("safe_defaults") is not None:
        from callaro_pipeline.core import config

        monkeypatch.setattr(config, "SAFE_DEFAULTS", ad_hoc_campaign_defaults)


@pytest.fixture
def callaro_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty CALLARO_HOME and a copy of the project's config; returns the home folder."""
    return install_callaro_env(tmp_path, monkeypatch)


def write_csv(
    path: Path, header: list[str], rows: list[list[str]], *, delimiter: str = ",", encoding: str = "utf-8"
) -> Path:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def query(store, sql: str, params: list | None = None):
    """A polars frame read from `store` (a Warehouse) through a lock-free read session."""
    with store.read() as con:
        return con.execute(sql, params or []).pl()


def open_lake(home, *, read_only: bool = True):
    """A plain DuckDB connection with the home's lake attached as `lake`, as an analyst's ATTACH line gives."""
    import duckdb

    from callaro_pipeline.storage.lake import LakeLocation, attach

    con = duckdb.connect()
    attach(con, LakeLocation.for_home(Path(home).resolve()), read_only=read_only)
    return con


@pytest.fixture(scope="session")
def postgres_conninfo() -> Iterator[str]:
    """A libpq conninfo for an empty database on a throwaway Postgres cluster (stopped and deleted at the end of
    the session); tests using it are skipped, with the reason, where Postgres is missing or cannot start."""
    from callaro_pipeline_tests.postgres import PostgresUnavailable, throwaway_cluster

    with contextlib.ExitStack() as stack:
        try:
            conninfo = stack.enter_context(throwaway_cluster())
        except PostgresUnavailable as why:
            pytest.skip(f"no throwaway Postgres for the shared-catalog tests: {why}")
        yield conninfo


@dataclass
class Ran:
    """What one in-process `callaro` command returned and printed."""

    code: int
    out: str
    err: str

    def json(self) -> dict:
        assert self.out.strip(), self.err
        return json.loads(self.out.strip().splitlines()[-1])


def cli(*args: object) -> Ran:
    """Run `callaro ARGS...` in this process, capturing stdout and stderr."""
    from callaro_pipeline.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Ran(code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A subprocess in a session of its own (its children too), stopped at the end however the test ends."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)

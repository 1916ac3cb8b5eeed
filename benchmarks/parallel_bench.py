"""Parallel imports (issue 15): 1, 2 and 4 `callaro import` processes at once, each a 200k-row file into its own
campaign and its own CALLARO_HOME (a "machine"), all against one shared catalog and data path — a throwaway
Postgres catalog where Postgres can start here, else one SQLite catalog (printed). Prints wall time and rows/s.

    uv run python benchmarks/parallel_bench.py [--rows 200000] [--ways 1 2 4]

Also a section of benchmarks/run.py (`--skip parallel` leaves it out). Never run inside pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate_upload  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def shared_catalog(root: Path):
    """(`CALLARO_CATALOG` value or None for SQLite, a description)."""
    from callaro_pipeline_tests.postgres import PostgresUnavailable, create_database, throwaway_cluster

    try:
        with throwaway_cluster() as conninfo:
            yield lambda: "postgres:" + create_database(conninfo, f"bench_{uuid.uuid4().hex[:10]}"), "Postgres"
            return
    except PostgresUnavailable as why:
        print(f"no throwaway Postgres ({why}): SQLite catalog", flush=True)
    yield lambda: f"sqlite:{root / ('catalog-' + uuid.uuid4().hex[:8] + '.sqlite')}", "SQLite"


def run_parallel(ways: int, files: list[Path], catalog: str, root: Path) -> float:
    base = root / f"ways-{ways}-{uuid.uuid4().hex[:6]}"
    config = base / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "campaigns" / "_defaults.yaml").write_text(
        "require_national_dnc: false\nrequire_consent: false\n", encoding="utf-8"
    )
    common = {"CALLARO_CONFIG": str(config), "CALLARO_CATALOG": catalog, "CALLARO_DATA_PATH": str(base / "data")}
    started = time.perf_counter()
    processes = []
    for n in range(ways):
        home = base / f"machine{n}"
        env = os.environ | common | {"CALLARO_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
        command = [sys.executable, "-m", "callaro_pipeline.cli", "import", str(files[n]), "--campaign", f"bench{n}"]
        processes.append(
            subprocess.Popen([*command, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"an import failed ({process.returncode}): {err.decode()[-500:]}")
    return time.perf_counter() - started


def bench_parallel(rows: int, ways_list: list[int], root: Path) -> None:
    files = []
    for n in range(max(ways_list)):
        path = root / f"parallel-{n}.csv"
        generate_upload(rows, seed=100 + n, first_id=n * rows).write_csv(path)
        files.append(path)
    with shared_catalog(root) as (new_catalog, kind):
        for ways in ways_list:
            wall = run_parallel(ways, files, new_catalog(), root)
            print(
                f"parallel imports, {ways} x {rows:,} rows, {kind} catalog: {wall:.1f} s wall, "
                f"{ways * rows / wall:,.0f} rows/s",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--ways", type=int, nargs="*", default=[1, 2, 4])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="callaro-parallel-") as temporary:
        bench_parallel(args.rows, args.ways, Path(temporary))


if __name__ == "__main__":
    main()

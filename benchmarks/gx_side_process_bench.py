"""Time a small `callaro import` (the console script, a fresh process each time) and how long its GX gate waited.

    uv run python benchmarks/gx_side_process_bench.py [--rows 2] [--repeat 5] [--code NAME=DIR ...]

`--code` runs the same imports on other checkouts of `callaro_pipeline` (DIR holds the package; it goes first
on PYTHONPATH), alternated with each other in one run, so that before/after figures share the machine's load.
The gate's wait is its `gx_seconds` metadata, read back from the warehouse.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate_upload  # noqa: E402

CALLARO = Path(sys.executable).parent / "callaro"
GX_SECONDS = (
    "import json, sys; from callaro_pipeline.storage.warehouse import Warehouse\n"
    "with Warehouse().read() as con:\n"
    "    row = con.execute(\"SELECT metadata FROM upload_checks WHERE upload_id = ? AND name = 'great_expectations_upload'\","
    " [sys.argv[1]]).fetchone()\n"
    "print(json.loads(row[0])['gx_seconds'])"
)


def one_import(env: dict[str, str], file: Path, campaign: str) -> tuple[float, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(CALLARO), "import", str(file), "--campaign", campaign, "--json"], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise SystemExit(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    upload_id = json.loads(done.stdout.strip().splitlines()[-1])["upload_id"]
    gx = subprocess.run([sys.executable, "-c", GX_SECONDS, upload_id], env=env, capture_output=True, text=True)
    return seconds, float(gx.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--code", action="append", default=[], help="NAME=DIR, a checkout to compare")
    args = parser.parse_args()
    variants = dict(code.split("=", 1) for code in args.code) or {"this tree": ""}
    with tempfile.TemporaryDirectory(prefix="callaro-gx-side-") as temporary:
        root = Path(temporary)
        (root / "config" / "campaigns").mkdir(parents=True)
        base = {**os.environ, "CALLARO_HOME": str(root / "home"), "CALLARO_CONFIG": str(root / "config")}
        envs = {
            name: {**base, "PYTHONPATH": os.pathsep.join(p for p in (code, base.get("PYTHONPATH", "")) if p)}
            for name, code in variants.items()
        }
        files = [root / f"upload_{n}.csv" for n in range(args.repeat * len(envs) + 1)]
        for n, file in enumerate(files):
            generate_upload(args.rows, seed=100 + n, first_id=n * args.rows).write_csv(file)
        one_import(base, files[0], "warmup")  # the home's first import builds its phone-prefix table
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in envs}
        runs = iter(files[1:])
        for round_ in range(args.repeat):
            for name, env in envs.items():
                seconds, gx = one_import(env, next(runs), f"bench{round_}")
                figures[name].append((seconds, gx))
                print(f"{name}: whole command {seconds:.2f} s, gate waited {gx:.2f} s, {load()}", flush=True)
        for name, runs_ in figures.items():
            whole, gx = [s for s, _ in runs_], [g for _, g in runs_]
            print(
                f"{name}: whole command median {statistics.median(whole):.2f} s ({min(whole):.2f}-{max(whole):.2f}), "
                f"gate waited median {statistics.median(gx):.2f} s ({min(gx):.2f}-{max(gx):.2f})"
            )


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()

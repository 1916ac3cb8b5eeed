"""The benchmark: every performance target of the project, measured in one run on this machine.

    uv run python benchmarks/run.py                 # 1M-row upload, 100M DNC numbers, 20 uploads
    uv run python benchmarks/run.py --quick         # 100k rows, 1M DNC numbers, 3 uploads (smoke run)

Prints each figure next to its target. Figures go into benchmarks/RESULTS.md by hand, with the machine.

Steady state, as a user sees it from the second command on: one-time costs of a fresh clone or installation
are paid by warm-up steps that are timed and printed separately (Python compiling the installed packages'
bytecode on first import; building the cached phone-prefix table on a new CALLARO_HOME).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import phonenumbers
import polars as pl
from phonenumbers import timezone as pn_timezone

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate_upload  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# Issue 14's memory target for one 1M-row import (1.5 GB).
RSS_LIMIT_MIB = 1536


def naive_baseline(path: Path) -> tuple[float, list[tuple]]:
    """Read the file and call phonenumbers parse/valid/format/time zone row by row (what a first version does)."""
    started = time.perf_counter()
    results = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                number = phonenumbers.parse(row["Phone Number"], "US")
                valid = phonenumbers.is_valid_number(number)
                e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if valid else None
                zones = pn_timezone.time_zones_for_number(number) if valid else ()
            except phonenumbers.NumberParseException:
                e164, zones = None, ()
            results.append((e164, zones))
    return time.perf_counter() - started, results


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, dict, int]:
    """One whole `callaro import` command in a child process; returns seconds, summary and peak RSS (KiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "callaro_pipeline.cli", *args, "--json"], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode not in (0, 1):
        raise SystemExit(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1]), max(peak, before)


def lake_bytes(home: Path) -> int:
    """The size of a home's lake: its catalog and data files."""
    return sum(f.stat().st_size for f in (home / "lake").rglob("*") if f.is_file())


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def line(what: str, value: str, target: str, ok: bool | None) -> None:
    mark = "" if ok is None else ("  PASS" if ok else "  MISS")
    print(f"{what:<58} {value:>22}   target {target}{mark}", flush=True)


def bench_phones(path: Path, naive_seconds: float, naive: list[tuple]) -> None:
    from callaro_pipeline.core.phones import normalize_phones

    raw = pl.read_csv(path, columns=["Phone Number"], infer_schema=False).get_column("Phone Number")
    started = time.perf_counter()
    normalize_phones(raw.head(100), "US")  # builds (or loads) the cached NPA-NXX table: once per CALLARO_HOME
    line("phone prefix table, build or load (one-time, s)", f"{time.perf_counter() - started:.1f}", "", None)
    started = time.perf_counter()
    fast = normalize_phones(raw, "US")
    seconds = time.perf_counter() - started
    expected = pl.Series([r[0] for r in naive], dtype=pl.Utf8)
    # Extensions are kept apart by the pipeline, the naive loop keeps them inside the parse: compare E.164.
    agree = (fast.get_column("phone_e164").eq_missing(expected)).mean()
    ratio = naive_seconds / seconds
    line("phone normalization, rows", f"{raw.len():,}", "", None)
    line("phone normalization (s) / naive (s)", f"{seconds:.2f} / {naive_seconds:.1f}", "", None)
    line("phone normalization speed-up vs naive", f"{ratio:.1f}x", ">= 20x", ratio >= 20)
    line("phone normalization agreement with phonenumbers", f"{agree:.4%}", "100%", agree == 1.0)


def bench_gates(rows: int, root: Path) -> None:
    from callaro_pipeline.core.gx_gate import great_expectations_gate

    docs = Path(tempfile.mkdtemp(dir=root))
    kwargs = dict(
        rows_read=rows,
        rejected=rows // 20,
        expected_count=rows,
        max_rejected_share=0.1,
        mapped_fields=["first_name", "phone"],
        docs_root=docs,
    )
    great_expectations_gate(upload_id="warmup", **kwargs)
    started = time.perf_counter()
    result = great_expectations_gate(upload_id="bench", **kwargs)
    seconds = time.perf_counter() - started
    line("Great Expectations gate, 1M-row upload (warm, s)", f"{seconds:.2f}", "< 1 s", seconds < 1)
    line("  expectations evaluated", str(result.metadata.get("expectations_evaluated")), "> 0", None)


def bench_dnc(numbers: int, contacts_path: Path, root: Path) -> None:
    from callaro_pipeline.core.config import Campaign
    from callaro_pipeline.core.phones import normalize_phones
    from callaro_pipeline.storage.dnc_loads import import_dnc_file
    from callaro_pipeline.storage.suppression import scrub
    from callaro_pipeline.storage.warehouse import Warehouse

    home = Path(tempfile.mkdtemp(prefix="dnc-", dir=root))
    warehouse = Warehouse(home=str(home))
    national = home / "dnc" / "national.txt"
    national.parent.mkdir(parents=True)
    started = time.perf_counter()
    # Distinct valid NANP numbers (area code and exchange 200-999) in no particular order, one per line: i -> i *
    # 7919 mod 6.4e9 is one-to-one on [0, 6.4e9) (7919 is prime, 6.4e9 = 2^14 5^8). No junk line: a DNC file with
    # a line that is not a phone number is refused whole (core/dnc_files.py).
    n = pl.col("i") * 7919 % 6_400_000_000
    number = (200 + n // 8_000_000) * 10_000_000 + (200 + n // 10_000 % 800) * 10_000 + n % 10_000
    (
        pl.select(pl.int_range(0, numbers, dtype=pl.Int64).alias("i"))
        .select(number.cast(pl.Utf8).alias("n"))
        .write_csv(national, include_header=False)
    )
    size = national.stat().st_size / 1e9
    line(f"DNC national file generated ({size:.2f} GB, s)", f"{time.perf_counter() - started:.1f}", "", None)
    with warehouse.transaction() as con:  # the schema, and DuckDB's first arrow registration, outside the timing
        con.execute("SELECT 1")
    started = time.perf_counter()
    with warehouse.transaction() as con:
        loaded = import_dnc_file(con, national, source="national", snapshot_date=date.today())
    seconds = time.perf_counter() - started
    rate = loaded.rows_loaded / seconds
    line(f"DNC load {loaded.rows_loaded:,} numbers, commit included (s)", f"{seconds:.1f}", "", None)
    line(f"DNC load {loaded.rows_loaded:,} numbers (numbers/s)", f"{rate:,.0f}", ">= 5M/s", rate >= 5_000_000)
    raw = pl.read_csv(contacts_path, columns=["Phone Number"], infer_schema=False).get_column("Phone Number")
    contacts = (
        normalize_phones(raw, "US")
        .filter(pl.col("phone_e164").is_not_null())
        .select(
            "phone_e164",
            pl.lit("yes").alias("consent"),
            pl.lit(None, pl.Utf8).alias("consent_date"),
            pl.lit(None, pl.Utf8).alias("consent_source"),
        )
    )
    with warehouse.transaction() as con:
        started = time.perf_counter()
        scrubbed = scrub(con, contacts, campaign=Campaign(name="bench"))
        seconds = time.perf_counter() - started
    hits = scrubbed.filter(pl.col("reasons").list.len() > 0).height
    line(f"DNC scrub {contacts.height:,} contacts ({hits:,} listed) (s)", f"{seconds:.2f}", "< 2 s", seconds < 2)
    size = lake_bytes(warehouse.paths.home) / 1e9
    line("  lake (catalog + data files) with the list (GB)", f"{size:.2f}", "", None)


# An analyst's loop while an import writes: `count(*)` on contacts through a lock-free read session.
ANALYST = """
import sys, time
from pathlib import Path
from callaro_pipeline.storage.warehouse import Warehouse
stop, store, seconds, errors = Path(sys.argv[1]), Warehouse(), [], 0
while not stop.exists():
    started = time.perf_counter()
    try:
        with store.read() as con:
            con.execute("SELECT count(*) FROM contacts").fetchone()
        seconds.append(time.perf_counter() - started)
    except Exception:
        errors += 1
    time.sleep(0.1)
print(len(seconds), errors, max(seconds[1:] or [0.0]))
"""


def start_analyst(env: dict[str, str], stop: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", ANALYST, str(stop)], env=env, stdout=subprocess.PIPE, text=True)


def report_analyst(reader: subprocess.Popen, stop: Path) -> None:
    stop.touch()
    answers, errors, slowest = reader.communicate(timeout=120)[0].split()
    ok = int(errors) == 0 and float(slowest) < 1
    line(
        f"analyst count(*) during the import: {answers} reads, {errors} errors",
        f"max {float(slowest):.2f} s",
        "< 1 s",
        ok,
    )


def bench_fixed_cost(home: Path, env: dict[str, str]) -> None:
    """A 2-row import against merely importing the libraries it is built on (both in fresh processes)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import dagster, duckdb, polars, phonenumbers"], env=env, check=True)
    bare = time.perf_counter() - started
    tiny = home / "two_rows.csv"
    generate_upload(2, seed=3).write_csv(tiny)
    seconds, _, _ = run_cli(["import", str(tiny), "--campaign", "tiny"], env)
    line("`import dagster, duckdb, polars, phonenumbers` (s)", f"{bare:.1f}", "", None)
    line(
        "2-row callaro import vs those imports",
        f"{seconds:.1f} s = {seconds / bare:.1f}x",
        "<= 4x",
        seconds <= 4 * bare,
    )


def bench_imports(path: Path, uploads: int, naive_seconds: float, rows: int, root: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="imports-", dir=root))
    config = home / "config"
    (config / "campaigns").mkdir(parents=True)
    (config / "campaigns" / "bench.yaml").write_text("name: bench\nmax_rejected_share: 0.5\nduplicates: suppress\n")
    env = {**os.environ, "CALLARO_HOME": str(home / "state"), "CALLARO_CONFIG": str(config)}
    # Warm-up, in other campaigns of the same installation: with bytecode writing allowed (a fresh clone compiles
    # the packages it imports, once), and building this new CALLARO_HOME's phone-prefix table.
    warmup = home / "warmup.csv"
    generate_upload(1000, seed=7).write_csv(warmup)
    compiling = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    seconds, _, _ = run_cli(["import", str(warmup), "--campaign", "warmup"], compiling)
    line("warm-up: first 1,000-row import of a fresh installation (s)", f"{seconds:.1f}", "", None)
    seconds, _, _ = run_cli(["import", str(warmup), "--campaign", "warmup2"], env)
    line("  the same 1,000 rows again, steady state (s)", f"{seconds:.1f}", "", None)
    bench_fixed_cost(home, env)
    firsts = None
    for n in range(1, uploads + 1):
        file = path if n == 1 else home / f"upload_{n}.csv"
        if n > 1:
            generate_upload(rows, seed=1000 + n, first_id=(n - 1) * rows).write_csv(file)
        reader = start_analyst(env, home / f"stop-{n}") if n == 1 else None
        seconds, summary, peak_kib = run_cli(["import", str(file), "--campaign", "bench"], env)
        if reader is not None:
            report_analyst(reader, home / f"stop-{n}")
        print(
            f"  upload #{n}: {seconds:.1f} s, {summary['status']}, imported {summary['imported']:,}, "
            f"timings {summary.get('timings')}, peak RSS so far {peak_kib / 1024:,.0f} MiB, {load_average()}",
            flush=True,
        )
        if n > 1:
            file.unlink()
        if n == 1:
            firsts = seconds
            ratio = naive_seconds / seconds
            line("callaro import, whole command (s)", f"{seconds:.1f}", "", None)
            for stage, value in sorted((summary.get("timings") or {}).items()):
                line(f"  stage {stage}", f"{value:.2f}", "", None)
            line("  rows/s (whole command)", f"{rows / seconds:,.0f}", "", None)
            line("callaro import speed-up vs naive baseline", f"{ratio:.1f}x", ">= 5x", ratio >= 5)
            line(
                "callaro import peak RSS (MiB)",
                f"{peak_kib / 1024:,.0f}",
                f"<= {RSS_LIMIT_MIB}",
                peak_kib / 1024 <= RSS_LIMIT_MIB,
            )
            line(
                "  status / imported / rejected / duplicates",
                f"{summary['status']} {summary['imported']} {summary['rejected']} {summary['duplicates']}",
                "",
                None,
            )
        elif n == uploads:
            ratio = seconds / firsts
            for stage, value in sorted((summary.get("timings") or {}).items()):
                line(f"  upload #{n} stage {stage}", f"{value:.2f}", "", None)
            line(f"upload #{n} vs #1 into the same campaign", f"{seconds:.1f}s = {ratio:.2f}x", "<= 1.2x", ratio <= 1.2)
            line(
                f"  peak RSS over all {uploads} imports (MiB)",
                f"{peak_kib / 1024:,.0f}",
                f"<= {RSS_LIMIT_MIB}",
                peak_kib / 1024 <= RSS_LIMIT_MIB,
            )
            size = lake_bytes(home / "state") / 1e9
            line("  lake (catalog + data files) after the imports (GB)", f"{size:.2f}", "", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dnc-numbers", type=int, default=100_000_000)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--skip", nargs="*", default=[], choices=["imports", "dnc", "phones", "gates", "parallel"])
    args = parser.parse_args()
    if args.quick:
        args.rows, args.dnc_numbers, args.uploads = 100_000, 1_000_000, 3
    # Everything the run writes (gigabytes with the national list) lives under one directory, removed at the end.
    with tempfile.TemporaryDirectory(prefix="callaro-bench-") as temporary:
        run_all(args, Path(temporary))


def run_all(args: argparse.Namespace, root: Path) -> None:
    # this process's own installation (the phone-prefix cache), never the project's data/
    os.environ["CALLARO_HOME"] = tempfile.mkdtemp(prefix="home-", dir=root)
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {load_average()}",
        flush=True,
    )
    upload = root / "upload.csv"
    generate_upload(args.rows, seed=42).write_csv(upload)
    naive_seconds, naive = naive_baseline(upload)
    line(f"naive baseline, {args.rows:,} rows (s)", f"{naive_seconds:.1f}", "", None)
    if "phones" not in args.skip:
        bench_phones(upload, naive_seconds, naive)
    if "gates" not in args.skip:
        bench_gates(args.rows, root)
    if "imports" not in args.skip:
        bench_imports(upload, args.uploads, naive_seconds, args.rows, root)
    if "dnc" not in args.skip:
        bench_dnc(args.dnc_numbers, upload, root)
    if "parallel" not in args.skip:  # issue 15: 1, 2 and 4 parallel imports of 200k rows on one shared catalog
        from parallel_bench import bench_parallel

        bench_parallel(20_000 if args.quick else 200_000, [1, 2, 4], root)
    print(f"end: {datetime.now(UTC):%H:%M} UTC, {load_average()}", flush=True)


if __name__ == "__main__":
    main()

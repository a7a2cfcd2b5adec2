"""Benchmark: `seed_data --readings 1000000` against a raw `psql \\copy` of the same rows, in one run.

Both load 1,000,000 readings into the same empty, indexed readings table on the
PostgreSQL server of DATABASE_URL (default: 127.0.0.1:5432, database
smartmaint_bench, recreated). Rounds alternate between the two so machine
noise hits both alike. Also measures peak memory of `--readings 10000000`.

    .venv/bin/python bench/seed_data.py [--rounds 5] [--skip-memory]

Targets (issue 3): median seed time <= 2.5 x median raw COPY; peak RSS of the
10M run < 500 MB.
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

import psycopg

ROOT = Path(__file__).resolve().parent.parent
END = "2026-01-01T00:00:00Z"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    dbname = "smartmaint_bench"
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {dbname}")
    url = f"{args.server}/{dbname}"
    env = {**os.environ, "DJANGO_DEBUG": "true", "DATABASE_URL": url}
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)

    seed_cmd = [*manage, "seed_data", "--readings", str(args.readings), "--end", END, "--quiet"]
    subprocess.run(seed_cmd, env=env, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "readings.csv"
        export = "COPY (SELECT sensor_id, time, value, quality FROM readings_reading) TO STDOUT (FORMAT CSV)"
        with psycopg.connect(url) as conn, csv_path.open("wb") as out, conn.cursor().copy(export) as copy:
            for chunk in copy:
                out.write(chunk)
        raw_cmd = [
            "psql",
            url,
            "-q",
            "-c",
            f"\\copy readings_reading (sensor_id, time, value, quality) FROM '{csv_path}' CSV",
        ]

        def empty_readings(*, fleet: bool) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                tables = (
                    "readings_reading, readings_faultlabel, sensors_sensor, sensors_asset"
                    if fleet
                    else "readings_reading"
                )
                conn.execute(f"TRUNCATE {tables} CASCADE")
                conn.execute("VACUUM ANALYZE readings_reading")

        raw, seeded = [], []
        for _ in range(args.rounds):
            empty_readings(fleet=False)
            raw.append(timed(raw_cmd, env))
            empty_readings(fleet=True)
            seeded.append(timed(seed_cmd, env))
        with psycopg.connect(url) as conn:
            stored = conn.execute("SELECT count(*) FROM readings_reading").fetchone()[0]
        assert stored == args.readings, stored

    result = {
        "readings": args.readings,
        "rounds": args.rounds,
        "raw_copy_s": raw,
        "seed_data_s": seeded,
        "raw_copy_median_s": statistics.median(raw),
        "seed_data_median_s": statistics.median(seeded),
    }
    result["ratio"] = result["seed_data_median_s"] / result["raw_copy_median_s"]
    print(f"raw psql \\copy of {args.readings:,} rows: median {result['raw_copy_median_s']:.2f} s  {fmt(raw)}")
    print(f"seed_data --readings {args.readings:,}:   median {result['seed_data_median_s']:.2f} s  {fmt(seeded)}")
    print(f"ratio seed_data / raw COPY: {result['ratio']:.2f} (target <= 2.5)")

    if not args.skip_memory:
        memory_cmd = [*manage, "seed_data", "--readings", "10000000", "--end", END, "--quiet", "--reset"]
        seconds, peak_kb = timed(memory_cmd, env, rusage=True)
        result["memory_10m_peak_mb"] = peak_kb / 1024
        result["memory_10m_seconds"] = seconds
        print(f"seed_data --readings 10,000,000: {seconds:.1f} s, peak RSS {peak_kb / 1024:.0f} MB (target < 500 MB)")

    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "seed_data.json").write_text(json.dumps(result, indent=2))
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    return 0


def timed(command: list[str], env: dict, rusage: bool = False):
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{command[:3]} failed with {proc.returncode}")
    return (elapsed, usage.ru_maxrss) if rusage else elapsed


def fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


if __name__ == "__main__":
    raise SystemExit(main())

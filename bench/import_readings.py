"""Benchmark: `import_readings` of a generated 1M-row wide CSV against `readings_insert` of the same readings.

Both write into the same empty, indexed readings table on the PostgreSQL server of --server (database
smartmaint_bench_import, recreated), in the same chunks (--chunk-size rows, one COPY each). Rounds alternate
between the two so machine noise hits both alike. The reference gets its readings ready-made in memory, so
the ratio is what reading and checking the file costs on top of the COPY itself. Also measured: a rerun of
the import (every reading already present) and the peak memory of the command on the file.

    .venv/bin/python bench/import_readings.py [--rows 1000000] [--sensors 4] [--rounds 3]
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
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
DBNAME = "smartmaint_bench_import"
START = datetime(2024, 1, 1, tzinfo=UTC)
ASSET = "BENCH-1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Rows of the wide CSV (one time each).")
    parser.add_argument("--sensors", type=int, default=4, help="Sensor columns of the wide CSV.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=50_000)
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()

    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DBNAME}")
    url = f"{args.server}/{DBNAME}"
    env = {**os.environ, "DJANGO_DEBUG": "true", "DATABASE_URL": url}
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    readings = args.rows * args.sensors
    with tempfile.TemporaryDirectory() as tmp:
        path, small = Path(tmp) / "wide.csv", Path(tmp) / "small.csv"
        seconds = generate(path, rows=args.rows, sensors=args.sensors)
        generate(small, rows=max(1, args.rows // 10), sensors=args.sensors)
        print(f"generated {path.name}: {args.rows:,} rows x {args.sensors} sensors in {seconds:.1f} s")

        def empty() -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("TRUNCATE readings_reading")
                conn.execute("VACUUM ANALYZE readings_reading")

        # The command's memory is measured first, while this process is small: a child's peak RSS counts the
        # parent's pages until it execs. The first run creates the asset and its sensors; a tenth of the file
        # should peak about as high as the whole (memory does not grow with the file).
        command = [*manage, "import_readings", "--asset", ASSET, "--chunk-size", str(args.chunk_size), "--quiet"]
        _, small_peak_kb = timed(
            [*command, str(small), "--create", "--site", "Bench", "--sensor-type", "vibration"], env
        )
        empty()
        command_seconds, peak_kb = timed([*command, str(path)], env)

        os.environ.update(DJANGO_DEBUG="true", DATABASE_URL=url, DJANGO_SETTINGS_MODULE="smartmaint.settings")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from readings.services import ReadingBatch, readings_import, readings_insert
        from sensors.models import Sensor

        import_kwargs = {"path": path, "asset_code": ASSET, "chunk_size": args.chunk_size}
        pks = [Sensor.objects.get(sensor_id=f"{ASSET}-s{n}").pk for n in range(args.sensors)]
        batches = reference_batches(pks, rows=args.rows, chunk=args.chunk_size, batch_type=ReadingBatch)

        imported, reference = [], []
        for _ in range(args.rounds):
            empty()
            started = time.perf_counter()
            stored = sum(readings_insert(batch=batch) for batch in batches)
            reference.append(time.perf_counter() - started)
            assert stored == readings, stored
            empty()
            started = time.perf_counter()
            report = readings_import(**import_kwargs)
            imported.append(time.perf_counter() - started)
            assert report.stored == readings and not report.problem_count, report
        started = time.perf_counter()
        rerun = readings_import(**import_kwargs)
        rerun_seconds = time.perf_counter() - started
        assert rerun.stored == 0 and rerun.present == readings, rerun

    result = {
        "rows": args.rows,
        "sensors": args.sensors,
        "readings": readings,
        "chunk_size": args.chunk_size,
        "rounds": args.rounds,
        "import_s": imported,
        "readings_insert_s": reference,
        "import_median_s": statistics.median(imported),
        "readings_insert_median_s": statistics.median(reference),
        "rerun_s": rerun_seconds,
        "command_s": command_seconds,
        "command_peak_rss_mb": peak_kb / 1024,
        "command_tenth_peak_rss_mb": small_peak_kb / 1024,
    }
    result["import_rows_per_s"] = args.rows / result["import_median_s"]
    result["import_readings_per_s"] = readings / result["import_median_s"]
    result["reference_readings_per_s"] = readings / result["readings_insert_median_s"]
    result["ratio"] = result["import_median_s"] / result["readings_insert_median_s"]
    print(
        f"readings_insert of {readings:,} readings (ready-made, same chunks): median "
        f"{result['readings_insert_median_s']:.2f} s {fmt(reference)} = {result['reference_readings_per_s']:,.0f} "
        "readings/s"
    )
    print(
        f"readings_import of the {args.rows:,}-row CSV: median {result['import_median_s']:.2f} s {fmt(imported)} = "
        f"{result['import_rows_per_s']:,.0f} rows/s, {result['import_readings_per_s']:,.0f} readings/s"
    )
    print(f"ratio import / readings_insert: {result['ratio']:.2f}")
    print(f"rerun (all {readings:,} already present): {rerun_seconds:.2f} s")
    print(
        f"manage.py import_readings (process start included): {command_seconds:.2f} s, peak RSS "
        f"{peak_kb / 1024:.0f} MB ({small_peak_kb / 1024:.0f} MB on a tenth of the file)"
    )

    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "import_readings.json").write_text(json.dumps(result, indent=2))
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
    return 0


def generate(path: Path, *, rows: int, sensors: int) -> float:
    """A wide CSV: ISO times one second apart and one random-walk column per sensor, written in blocks."""
    started = time.perf_counter()
    rng = np.random.default_rng(7)
    level = np.zeros(sensors)
    with path.open("w") as out:
        out.write("time," + ",".join(f"s{n}" for n in range(sensors)) + "\n")
        for first in range(0, rows, 100_000):
            count = min(100_000, rows - first)
            times = np.datetime64(START.replace(tzinfo=None), "s") + np.arange(first, first + count)
            steps = rng.normal(0, 0.1, (count, sensors)).cumsum(axis=0) + level
            level = steps[-1]
            stamps = np.datetime_as_string(times, unit="s")
            block = np.column_stack([stamps, np.char.mod("%.4f", steps)])
            out.write("\n".join(",".join(row) for row in block.tolist()) + "\n")
    return time.perf_counter() - started


def reference_batches(pks: list[int], *, rows: int, chunk: int, batch_type) -> list:
    """The file's readings, chunk by chunk as the import makes them, built before the clock starts."""
    rng = np.random.default_rng(7)
    start = np.datetime64(START.replace(tzinfo=None), "us")
    batches = []
    for first in range(0, rows, chunk):
        count = min(chunk, rows - first)
        times = start + np.arange(first, first + count).astype("timedelta64[s]")
        batches.append(
            batch_type.from_columns(
                sensor=np.tile(np.array(pks, dtype=np.int64), count),
                time=np.repeat(times, len(pks)),
                value=rng.normal(0, 1, count * len(pks)),
                quality=np.ones(count * len(pks)),
            )
        )
    return batches


def timed(command: list[str], env: dict) -> tuple[float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{command[:3]} failed")
    return time.perf_counter() - started, usage.ru_maxrss


def fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


if __name__ == "__main__":
    raise SystemExit(main())

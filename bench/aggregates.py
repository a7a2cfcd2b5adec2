"""Benchmark: `readings_buckets` (30 days of hourly avg/min/max of one sensor) against the same SQL run with psycopg.

The request: sensor-001, the 720 hourly buckets up to and including its newest reading.

A fresh database (smartmaint_bench_agg on the PostgreSQL server of --server,
default 127.0.0.1:5432) is migrated, seeded with 10,000,000 readings (20
sensors, one a minute, ending 2026-01-01) and dropped at the end. After warm-up,
each round runs every measurement once, in turn, so machine noise hits all
alike; medians, p95 and the ratio to raw SQL go to bench/results/aggregates.json.

    .venv/bin/python bench/aggregates.py [--rounds 30] [--warmup 5] [--keep]

A measurement is a function in MEASUREMENTS: given the Context, it returns a
callable that runs one request and returns the rows it got.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from common import Gunicorn, production_env

ROOT = Path(__file__).resolve().parent.parent
DBNAME = "smartmaint_bench_agg"
END = "2026-01-01T00:00:00Z"
SENSOR = "sensor-001"
SPAN = timedelta(days=30)
BUCKET = "1h"
AGGS = ("avg", "min", "max")


@dataclass
class Context:
    """What every measurement needs: the database, the sensor and the request."""

    url: str
    sensor_pk: int
    start: datetime
    end: datetime
    bucket: timedelta
    aggs: tuple[str, ...] = AGGS
    closers: list[Callable[[], None]] = field(default_factory=list)

    def request(self) -> dict:
        return {"sensor_pk": self.sensor_pk, "start": self.start, "end": self.end, "bucket": self.bucket}


def measure_selector(ctx: Context) -> Callable[[], list]:
    """The selector in-process, through Django's connection (as a view would call it)."""
    from readings.aggregates import readings_buckets

    def run() -> list:
        return readings_buckets(aggs=ctx.aggs, **ctx.request())

    return run


def measure_raw_sql(ctx: Context) -> Callable[[], list]:
    """The selector's own SQL and parameters, run on a plain psycopg connection: the reference."""
    from readings.aggregates import readings_buckets_sql

    _, sql, params = readings_buckets_sql(aggs=ctx.aggs, **ctx.request())
    conn = psycopg.connect(ctx.url, autocommit=True)
    ctx.closers.append(conn.close)

    def run() -> list:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    return run


def measure_api(ctx: Context) -> Callable[[], list]:
    """GET /api/v1/sensors/{id}/aggregates through gunicorn (one worker), with an API key: the whole HTTP path."""
    import http.client
    from urllib.parse import urlencode

    from sensors.models import APIKey, Sensor

    _, key = APIKey.objects.create_key(name="bench", scope="read")
    server = Gunicorn(production_env(os.environ, ctx.url), workers=1)
    ctx.closers.append(server.stop)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    ctx.closers.append(conn.close)
    sensor_id = Sensor.objects.get(pk=ctx.sensor_pk).sensor_id
    query = urlencode(
        {"from": ctx.start.isoformat(), "to": ctx.end.isoformat(), "bucket": BUCKET, "agg": ",".join(ctx.aggs)}
    )
    path = f"/api/v1/sensors/{sensor_id}/aggregates?{query}"
    headers = {"Authorization": f"Api-Key {key}"}

    def run() -> list:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body[:300]
        return json.loads(body)["buckets"]

    return run


# The reference comes first; the ratio of every other measurement is taken against it.
MEASUREMENTS: dict[str, Callable[[Context], Callable[[], list]]] = {
    "raw_sql": measure_raw_sql,
    "selector": measure_selector,
    "api": measure_api,
}
REFERENCE = "raw_sql"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--readings", type=int, default=10_000_000)
    parser.add_argument("--sensors", type=int, default=20)
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards (it is recreated anyway).")
    args = parser.parse_args()

    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DBNAME}")
    url = f"{args.server}/{DBNAME}"
    try:
        result = run(args, url)
    finally:
        if not args.keep:
            with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")

    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "aggregates.json").write_text(json.dumps(result, indent=2))
    return 0


def run(args: argparse.Namespace, url: str) -> dict:
    env = {**os.environ, "DJANGO_DEBUG": "true", "DATABASE_URL": url}
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    seed_cmd = [*manage, "seed_data", "--sensors", str(args.sensors), "--readings", str(args.readings)]
    started = time.perf_counter()
    subprocess.run([*seed_cmd, "--interval", "60", "--end", END, "--quiet"], env=env, check=True)
    seed_seconds = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE readings_reading")
    print(f"seeded {args.readings:,} readings in {seed_seconds:.1f} s")

    ctx = context(url)
    runs = {name: factory(ctx) for name, factory in MEASUREMENTS.items()}
    try:
        answers = {name: aggregate_values(fn()) for name, fn in runs.items()}
        assert len(answers[REFERENCE]) == SPAN // ctx.bucket, len(answers[REFERENCE])
        for name, rows in answers.items():
            assert rows == answers[REFERENCE], f"{name} disagrees with {REFERENCE}"
        for _ in range(args.warmup):
            for fn in runs.values():
                fn()
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, fn in runs.items():
                started = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - started) * 1000)
    finally:
        for close in ctx.closers:
            close()

    from readings.aggregates import bucket_strategy

    strategy = bucket_strategy(start=ctx.start, end=ctx.end, bucket=ctx.bucket, aggs=ctx.aggs)
    reference = statistics.median(samples[REFERENCE])
    result = {
        "readings": args.readings,
        "sensors": args.sensors,
        "request": {
            "sensor": SENSOR,
            "from": ctx.start.isoformat(),
            "to": ctx.end.isoformat(),
            "bucket": BUCKET,
            "aggs": list(ctx.aggs),
            "buckets": len(answers[REFERENCE]),
            "strategy": strategy,
        },
        "rounds": args.rounds,
        "warmup": args.warmup,
        "measurements": {},
    }
    print(
        f"{SENSOR}, {ctx.start:%Y-%m-%d} to {ctx.end:%Y-%m-%d}, {len(answers[REFERENCE])} buckets of {BUCKET} "
        f"{'/'.join(ctx.aggs)} via {strategy}; {args.rounds} interleaved rounds after {args.warmup} warm-up:"
    )
    for name, values in samples.items():
        median = statistics.median(values)
        summary = {"median_ms": median, "p95_ms": p95(values), "ratio": median / reference, "samples_ms": values}
        result["measurements"][name] = summary
        print(f"  {name:<10} median {median:7.2f} ms   p95 {summary['p95_ms']:7.2f} ms   x{summary['ratio']:.2f}")
    result["ratio"] = result["measurements"]["selector"]["ratio"]
    result["api_ratio"] = result["measurements"]["api"]["ratio"]
    print(f"ratio selector / raw SQL: {result['ratio']:.2f}; API / raw SQL: {result['api_ratio']:.2f} (target <= 2)")
    return result


def context(url: str) -> Context:
    """Set Django up in this process on the bench database (production mode: no query log) and pick the request."""
    os.environ.update(
        {
            "DATABASE_URL": url,
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "bench-only-not-secret",
            "DJANGO_ALLOWED_HOSTS": "localhost",
            "DJANGO_SETTINGS_MODULE": "smartmaint.settings",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db.models import Max

    from readings.aggregates import BUCKETS, bucket_floor
    from readings.models import Reading
    from sensors.models import Sensor

    sensor = Sensor.objects.get(sensor_id=SENSOR)
    bucket = BUCKETS[BUCKET]
    # The bucket holding the newest reading is the last one of the range.
    last = Reading.objects.filter(sensor=sensor).aggregate(last=Max("time"))["last"]
    end = bucket_floor(last, bucket) + bucket
    return Context(url=url, sensor_pk=sensor.pk, start=end - SPAN, end=end, bucket=bucket)


def aggregate_values(rows: list) -> list[tuple]:
    """The aggregates of each row, without the bucket: selector dicts and raw tuples compare alike."""
    return [tuple(row.values())[1:] if isinstance(row, dict) else tuple(row[1:]) for row in rows]


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


if __name__ == "__main__":
    raise SystemExit(main())

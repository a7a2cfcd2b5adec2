"""Benchmarks of the REST API under gunicorn, PostgreSQL and Redis on this machine.

1. Ingest: 4 concurrent clients POST batches of 1,000 readings; readings stored
   per second, against a raw COPY of the same rows in the same run.
2. Fleet status for 1,000 sensors: latency with a warm cache (p95 target < 50 ms)
   and with a cold one.

    .venv/bin/python bench/api.py [--rounds 3] [--batches 200]

Uses a fresh database `smartmaint_bench_api` (dropped at the end) on
BENCH_SERVER (default postgresql://postgres@127.0.0.1:5432) and Redis database
14 on 127.0.0.1:6379 (flushed).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis
from common import Gunicorn, percentile, production_env

ROOT = Path(__file__).resolve().parent.parent
DB = "smartmaint_bench_api"
REDIS_URL = "redis://127.0.0.1:6379/14"
SENSORS = 1000
CLIENTS = 4
BATCH = 1000


def manage(env, *args, capture=False):
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True, capture_output=capture, text=True
    )
    return result.stdout


def make_batches(sensor_ids, count, start):
    """`count` JSON bodies of BATCH readings, every (sensor, time) distinct."""
    bodies, rows = [], []
    step = timedelta(seconds=1)
    for b in range(count):
        items = []
        for i in range(BATCH):
            n = b * BATCH + i
            sensor = sensor_ids[n % len(sensor_ids)]
            t = start + step * (n // len(sensor_ids))
            items.append({"sensor_id": sensor, "time": t.isoformat(), "value": (n % 977) / 7.0, "quality": 1.0})
        bodies.append(json.dumps({"readings": items}).encode())
        rows.extend(items)
    return bodies, rows


def run_ingest(port, key, bodies):
    per_client = [bodies[i::CLIENTS] for i in range(CLIENTS)]
    accepted = [0] * CLIENTS
    errors = []

    def client(index):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
        for body in per_client[index]:
            conn.request("POST", "/api/v1/readings/ingest", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                errors.append((response.status, payload[:200]))
                return
            accepted[index] += json.loads(payload)["accepted"]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"ingest failed: {errors[:3]}")
    return sum(accepted), elapsed


def raw_copy(url, sensor_pks, rows):
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE readings_reading")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor().copy("COPY readings_reading (sensor_id, time, value, quality) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((sensor_pks[row["sensor_id"]], row["time"], row["value"], row["quality"]))
        conn.commit()
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=200, help="batches of 1,000 readings per ingest round")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--status-requests", type=int, default=200)
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()

    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    url = f"{args.server}/{DB}"
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = production_env(os.environ, url, REDIS_URL=REDIS_URL)
    manage(env, "migrate", "-v0")
    end = "2026-01-01T00:00:00Z"
    manage(env, "seed_data", "--sensors", str(SENSORS), "--readings", str(SENSORS), "--end", end, "--quiet")
    key = manage(
        env,
        "shell",
        "-v0",
        "-c",
        "from sensors.models import APIKey; print(APIKey.objects.create_key(name='bench', scope='read_ingest')[1])",
        capture=True,
    ).strip()
    with psycopg.connect(url) as conn:
        sensor_pks = dict(conn.execute("SELECT sensor_id, id FROM sensors_sensor").fetchall())
    sensor_ids = sorted(sensor_pks)

    result = {"clients": CLIENTS, "batch": BATCH, "workers": args.workers}
    server = Gunicorn(env, args.workers)
    try:
        # --- ingest -----------------------------------------------------------
        bodies, rows = make_batches(sensor_ids, args.batches, datetime(2026, 2, 1, tzinfo=UTC))
        api_rates, copy_rates = [], []
        for _ in range(args.rounds):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("TRUNCATE readings_reading")
            stored, seconds = run_ingest(server.port, key, bodies)
            assert stored == len(rows), (stored, len(rows))
            api_rates.append(stored / seconds)
            copy_rates.append(len(rows) / raw_copy(url, sensor_pks, rows))
        result["ingest_readings_per_s"] = api_rates
        result["copy_readings_per_s"] = copy_rates
        result["ingest_median"] = statistics.median(api_rates)
        result["copy_median"] = statistics.median(copy_rates)
        result["ingest_to_copy_ratio"] = result["ingest_median"] / result["copy_median"]
        print(
            f"ingest ({CLIENTS} clients x {BATCH}-reading batches, {len(rows):,} readings): "
            f"median {result['ingest_median']:,.0f} readings/s {[round(r) for r in api_rates]} (target >= 50,000)"
        )
        print(f"raw COPY of the same rows: median {result['copy_median']:,.0f} readings/s")
        print(f"ratio ingest / raw COPY: {result['ingest_to_copy_ratio']:.2f}")

        # --- fleet status -----------------------------------------------------
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE readings_reading")
        now = datetime.now(UTC).replace(microsecond=0)
        warmup_bodies = [
            json.dumps(
                {
                    "readings": [
                        {"sensor_id": s, "time": (now - timedelta(seconds=30)).isoformat(), "value": 1.0}
                        for s in sensor_ids
                    ]
                }
            ).encode()
        ]
        run_ingest(server.port, key, warmup_bodies)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        headers = {"Authorization": f"Api-Key {key}"}
        cache = redis.Redis.from_url(REDIS_URL)

        def status_once():
            started = time.perf_counter()
            conn.request("GET", "/api/v1/fleet/status", headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            assert response.status == 200, body[:200]
            return elapsed, body

        _, body = status_once()
        assert len(json.loads(body)["sensors"]) == SENSORS
        warm = [status_once()[0] * 1000 for _ in range(args.status_requests)]
        cold = []
        for _ in range(max(20, args.status_requests // 5)):
            cache.flushdb()
            cold.append(status_once()[0] * 1000)
        result.update(
            status_warm_median_ms=statistics.median(warm),
            status_warm_p95_ms=percentile(warm, 95),
            status_cold_median_ms=statistics.median(cold),
            status_cold_p95_ms=percentile(cold, 95),
        )
        print(
            f"fleet status, {SENSORS} sensors, warm cache: median {result['status_warm_median_ms']:.1f} ms, "
            f"p95 {result['status_warm_p95_ms']:.1f} ms (target p95 < 50 ms)"
        )
        print(
            f"fleet status, cold cache: median {result['status_cold_median_ms']:.1f} ms, "
            f"p95 {result['status_cold_p95_ms']:.1f} ms"
        )
    finally:
        server.stop()

    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "api.json").write_text(json.dumps(result, indent=2))
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

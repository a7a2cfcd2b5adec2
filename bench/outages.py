"""Redis stopped and frozen under live traffic: the app under gunicorn keeps answering reads and ingest.

4 clients send mixed traffic (ingest a batch of 50 readings, read a sensor's readings, its latest reading,
the fleet status) to gunicorn in production mode on PostgreSQL, with the cache in a throwaway redis-server:

1. reference: Redis up;
2. Redis stopped (the process ended), then started again on the same port: recovery without restarting
   gunicorn (throttle counters reappear in Redis);
3. Redis frozen (SIGSTOP), then thawed.

Prints, per phase, the requests, the 5xx answers (target: 0), the median and p95 latency and the median's ratio
to the reference.

    .venv/bin/python bench/outages.py [--seconds 6]

Uses a fresh database `smartmaint_bench_outage` on BENCH_SERVER (default postgresql://postgres@127.0.0.1:5432),
dropped at the end; never touches the shared Redis.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis
from common import Gunicorn, manage, production_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.outages import throwaway_redis  # noqa: E402

DB = "smartmaint_bench_outage"
CLIENTS = 4


class Traffic:
    """CLIENTS threads sending mixed requests until stopped; every answer recorded with its phase."""

    def __init__(self, port: int, key: str, sensor_ids: list[str]):
        self.port, self.key, self.sensor_ids = port, key, sensor_ids
        self.phase = "reference"
        self.records: list[tuple[str, int, float]] = []
        self.lock = threading.Lock()
        self.running = True
        self.clock = datetime(2026, 6, 1, tzinfo=UTC)
        self.counter = 0

    def _next_batch(self) -> bytes:
        with self.lock:
            self.counter += 1
            n = self.counter
        sensor = self.sensor_ids[n % len(self.sensor_ids)]
        items = [
            {"sensor_id": sensor, "time": (self.clock + timedelta(seconds=n * 100 + i)).isoformat(), "value": i}
            for i in range(50)
        ]
        return json.dumps({"readings": items}).encode()

    def _request(self, conn, method, path, body=None) -> None:
        headers = {"Authorization": f"Api-Key {self.key}", "Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except OSError:
            status = 599  # the connection failed: counted as a server error
            conn.close()
        with self.lock:
            self.records.append((self.phase, status, time.perf_counter() - started))

    def client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while self.running:
            sensor = self.sensor_ids[self.counter % len(self.sensor_ids)]
            self._request(conn, "POST", "/api/v1/readings/ingest", self._next_batch())
            self._request(conn, "GET", f"/api/v1/sensors/{sensor}/readings?limit=100&ordering=-time")
            self._request(conn, "GET", f"/api/v1/sensors/{sensor}/latest")
            self._request(conn, "GET", "/api/v1/fleet/status")


def _eventually(condition, seconds: float) -> float | None:
    """Seconds until ``condition()`` held, polled for ``seconds`` (then the phase goes on to its end); None if never."""
    started = time.monotonic()
    found = None
    while time.monotonic() - started < seconds:
        if found is None and condition():
            found = time.monotonic() - started
        time.sleep(0.1)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="Seconds of traffic per phase. Default 6.")
    args = parser.parse_args()
    server = os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    try:
        with throwaway_redis() as cache_server:
            env = production_env(
                dict(os.environ),
                f"{server}/{DB}",
                REDIS_URL=f"redis://127.0.0.1:{cache_server.port}/0",
                # Shorter than the default 5 s, so that each phase shows the recovery.
                CACHE_RETRY_SECONDS="1",
            )
            manage(env, "migrate", "--no-input", "-v0", capture=True)
            manage(env, "seed_data", "--sensors", "20", "--readings", "20000", "--quiet", capture=True)
            created = manage(env, "create_api_key", "bench outages", "--scope", "read_ingest", capture=True)
            key = next(line for line in created.splitlines() if re.fullmatch(r"\w+\.\w+", line.strip())).strip()
            sensor_ids = [f"sensor-{n:03d}" for n in range(1, 21)]
            gunicorn = Gunicorn(env, workers=2)
            traffic = Traffic(gunicorn.port, key, sensor_ids)
            threads = [threading.Thread(target=traffic.client) for _ in range(CLIENTS)]
            for thread in threads:
                thread.start()
            try:
                time.sleep(args.seconds)
                traffic.phase = "redis stopped"
                cache_server.stop()
                time.sleep(args.seconds)
                port = cache_server.port
                with throwaway_redis(port) as restarted:
                    traffic.phase = "redis restarted"
                    recovered = _eventually(lambda: bool(redis.Redis(port=port).keys("*throttle*")), args.seconds)
                    traffic.phase = "redis frozen"
                    restarted.freeze()
                    time.sleep(args.seconds)
                    restarted.thaw()
                    traffic.phase = "redis thawed"
                    redis.Redis(port=port).flushall()
                    recovered_after_freeze = _eventually(
                        lambda: bool(redis.Redis(port=port).keys("*throttle*")), args.seconds
                    )
            finally:
                traffic.running = False
                for thread in threads:
                    thread.join()
                gunicorn.stop()
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")

    phases = ["reference", "redis stopped", "redis restarted", "redis frozen", "redis thawed"]
    reference = statistics.median(t for p, _, t in traffic.records if p == "reference")
    print(f"{'phase':<17} {'requests':>8} {'5xx':>5} {'median ms':>10} {'p95 ms':>8} {'ratio':>6}")
    for phase in phases:
        times = [t for p, _, t in traffic.records if p == phase]
        errors = sum(1 for p, s, _ in traffic.records if p == phase and s >= 500)
        median = statistics.median(times)
        p95 = statistics.quantiles(times, n=20)[-1]
        ratio = median / reference
        print(f"{phase:<17} {len(times):>8} {errors:>5} {median * 1000:>10.1f} {p95 * 1000:>8.1f} {ratio:>6.2f}")
    statuses = sorted({s for _, s, _ in traffic.records})
    print(f"statuses seen: {statuses}")

    def seconds(found):
        return "never" if found is None else f"after {found:.1f} s"

    print(f"cache used again: {seconds(recovered)} of the restart, {seconds(recovered_after_freeze)} of the thaw")


if __name__ == "__main__":
    main()

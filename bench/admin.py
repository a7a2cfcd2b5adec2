"""Benchmark: render times of the admin console's pages on 10 million readings over 1,000 sensors.

A fresh database (smartmaint_bench_admin on --server, default 127.0.0.1:5432) is migrated, seeded with
`seed_data --sensors 1000 --readings 10000000 --end 2026-01-01T00:00:00Z`, vacuumed and analysed (what autovacuum
does after a bulk load), and dropped at the end. The app runs under gunicorn in production mode (DEBUG off,
Redis cache on database 12, flushed); one client logs in through the admin login form and requests, in each
round, every page once, in turn, so machine noise hits all alike:

- dashboard: the admin index (fleet counts, connectivity of 1,000 sensors, readings of the last 24 h, the 50
  most severe of the sensors needing attention; with this data every sensor is offline)
- sensor list: the first 100 sensors with last value, age, status badges and 24-hour sparklines
- sensor page 30 days: a sensor's change page charting 30 days (1,440 buckets of 30 minutes)
- readings browser: a sensor's newest 100 readings, and a page 5,000 readings deep (keyset)

The sensor pages and the browser cycle through 50 sensors. Times are wall-clock per request, from request sent
to body read. Medians and p95 go to bench/results/admin.json (admin-live.json with --end now); the target is a
median under 300 ms per page.
Cold-cache times (Redis flushed before each request) are measured for the dashboard and the sensor list.

    .venv/bin/python bench/admin.py [--rounds 30] [--warmup 3] [--keep] [--end now]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import redis
from common import Gunicorn, production_env

ROOT = Path(__file__).resolve().parent.parent
DBNAME = "smartmaint_bench_admin"
REDIS_URL = "redis://127.0.0.1:6379/12"
SENSORS = 1000
READINGS = 10_000_000
END = "2026-01-01T00:00:00Z"
TARGET_MS = 300
USERNAME, PASSWORD = "bench-staff", "bench-password-9251"
ROTATE = 50
DEEP = 5000


def percentile(values, q):
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def manage(env, *args):
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True, cwd=ROOT)


class Browser:
    """One HTTP client with a cookie jar: logs in through the admin form, then GETs pages."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes, dict]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, payload, dict(response.getheaders())

    def log_in(self) -> None:
        _, page, _ = self.request("GET", "/admin/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        form = urlencode({"csrfmiddlewaretoken": token, "username": USERNAME, "password": PASSWORD, "next": "/admin/"})
        status, _, headers = self.request("POST", "/admin/login/", form)
        if status != 302 or headers.get("Location") != "/admin/":
            raise SystemExit(f"login failed: {status}")

    def timed_get(self, path: str) -> tuple[float, bytes]:
        started = time.perf_counter()
        status, body, _ = self.request("GET", path)
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:300]!r}")
        return elapsed, body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cold", type=int, default=10, help="cold-cache requests per page (dashboard, list)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--keep", action="store_true", help="keep the database (and skip seeding when it exists)")
    parser.add_argument(
        "--end",
        default=END,
        help=f"time of the last reading (default {END}: every sensor offline); 'now' gives a live fleet, whose "
        "last 24 hours hold 1.44M readings",
    )
    args = parser.parse_args()

    url = f"{args.server}/{DBNAME}"
    env = production_env(os.environ, url, REDIS_URL=REDIS_URL)
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DBNAME]).fetchone()
        if not (args.keep and exists):
            conn.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DBNAME}")
            exists = None
    cache = redis.Redis.from_url(REDIS_URL)
    cache.flushdb()
    result: dict = {"sensors": SENSORS, "readings": READINGS, "end": args.end, "workers": args.workers}
    if not exists:
        manage(env, "migrate", "-v0")
        started = time.perf_counter()
        manage(env, "seed_data", "--sensors", str(SENSORS), "--readings", str(READINGS), "--end", args.end, "--quiet")
        result["seed_seconds"] = round(time.perf_counter() - started, 1)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) readings_reading")
            conn.execute("ANALYZE")
    manage(
        env,
        "shell",
        "-v0",
        "-c",
        "from django.contrib.auth.models import User; "
        f"User.objects.filter(username={USERNAME!r}).exists() or "
        f"User.objects.create_superuser({USERNAME!r}, password={PASSWORD!r})",
    )
    with psycopg.connect(url) as conn:
        [(readings,)] = conn.execute("SELECT count(*) FROM readings_reading").fetchall()
        assert readings == READINGS, readings
        pks = [pk for (pk,) in conn.execute("SELECT id FROM sensors_sensor ORDER BY sensor_id").fetchall()]
        deep_times = {}
        for pk in pks[:: SENSORS // ROTATE][:ROTATE]:
            [(moment,)] = conn.execute(
                "SELECT time FROM readings_reading WHERE sensor_id = %s ORDER BY time DESC OFFSET %s LIMIT 1",
                [pk, DEEP],
            ).fetchall()
            deep_times[pk] = moment
    rotation = list(deep_times)

    pages = {
        "dashboard": lambda i: "/admin/",
        "sensor list": lambda i: "/admin/sensors/sensor/",
        "sensor page 30 days": lambda i: f"/admin/sensors/sensor/{rotation[i % ROTATE]}/change/?range=30d",
        "readings browser": lambda i: f"/admin/readings/browse/?sensor={rotation[i % ROTATE]}",
        "readings browser, 5,000 deep": lambda i: (
            f"/admin/readings/browse/?sensor={rotation[i % ROTATE]}&"
            + urlencode({"before": deep_times[rotation[i % ROTATE]].isoformat()})
        ),
    }
    checks = {
        "dashboard": b'id="sm-attention"',
        "sensor list": b'class="sm-sparkline"',
        "sensor page 30 days": b'id="sm-chart-data"',
        "readings browser": b'id="sm-readings"',
        "readings browser, 5,000 deep": b'id="sm-readings"',
    }
    times: dict[str, list[float]] = {name: [] for name in pages}
    cold: dict[str, list[float]] = {"dashboard": [], "sensor list": []}
    load_before = os.getloadavg()
    server = Gunicorn(env, args.workers)
    try:
        client = Browser(server.port)
        client.log_in()
        for round_ in range(args.warmup + args.rounds):
            for name, path in pages.items():
                elapsed, body = client.timed_get(path(round_))
                if checks[name] not in body:
                    raise SystemExit(f"{name}: the page lacks {checks[name]!r}")
                if round_ >= args.warmup:
                    times[name].append(elapsed)
        chart = json.loads(
            re.search(
                rb'id="sm-chart-data" type="application/json">(.*?)</script>',
                client.timed_get(pages["sensor page 30 days"](0))[1],
                re.S,
            ).group(1)
        )
        for _ in range(args.cold):
            for name in cold:
                cache.flushdb()
                cold[name].append(client.timed_get(pages[name](0))[0])
        load_during = os.getloadavg()
    finally:
        server.stop()

    result["chart_points_30_days"] = len(chart["x"])
    result["load_average_before"] = [round(value, 2) for value in load_before]
    result["load_average_after"] = [round(value, 2) for value in load_during]
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["pages"] = {}
    print(f"{SENSORS:,} sensors, {READINGS:,} readings; gunicorn {args.workers} workers; {args.rounds} rounds")
    for name, values in times.items():
        row = {
            "median_ms": round(statistics.median(values), 1),
            "p95_ms": round(percentile(values, 95), 1),
            "min_ms": round(min(values), 1),
            "max_ms": round(max(values), 1),
        }
        result["pages"][name] = row
        verdict = "ok" if row["median_ms"] < TARGET_MS else "OVER TARGET"
        print(
            f"  {name:32s} median {row['median_ms']:7.1f} ms   p95 {row['p95_ms']:7.1f} ms   "
            f"(target median < {TARGET_MS} ms: {verdict})"
        )
    result["cold_cache"] = {}
    for name, values in cold.items():
        row = {"median_ms": round(statistics.median(values), 1), "max_ms": round(max(values), 1)}
        result["cold_cache"][name] = row
        print(f"  {name + ', cold cache':32s} median {row['median_ms']:7.1f} ms   max {row['max_ms']:7.1f} ms")
    print(f"  chart of 30 days: {result['chart_points_30_days']} points")
    print(f"  load average before {result['load_average_before']}, after {result['load_average_after']}")

    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / ("admin.json" if args.end == END else "admin-live.json")).write_text(json.dumps(result, indent=2))
    cache.flushdb()
    if not args.keep:
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

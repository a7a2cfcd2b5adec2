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
- asset page 30 days: an asset of 10 sensors (ten of the seeded ones moved onto one asset) charting 30 days
- fleet status API: GET /api/v1/fleet/status, 1,000 sensors (warm cache; target p95 < 50 ms)
- dashboard, 1,000-alert storm: the dashboard after an open alert was raised on every sensor (measured last,
  once the alerts are in)

Raw-query references, timed in the same rounds through psycopg: for the sensor list, the SQL its page needs
(the page of 100 sensors with their assets, their latest readings and their 24-hour sparklines); for the fleet
status, every sensor's latest reading with its sensor and asset (one LATERAL query); for the asset page, its ten
sensors' 30-minute means, minima and maxima over its 30 days (one LATERAL query). Each page is reported with its
ratio to its reference. Target for the sensor list: median < 100 ms.

The sensor pages and the browser cycle through 50 sensors. Times are wall-clock per request, from request sent
to body read. Medians and p95 go to bench/results/admin.json (admin-live.json with --end now); the target is a
median under 300 ms per page.
Cold-cache times (Redis flushed before each request) are measured for the dashboard and the sensor list.

    .venv/bin/python bench/admin.py [--rounds 30] [--warmup 3] [--keep] [--end now] [--readings N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import redis
from common import AdminClient, Gunicorn, production_env, summary

ROOT = Path(__file__).resolve().parent.parent
DBNAME = "smartmaint_bench_admin"
REDIS_URL = "redis://127.0.0.1:6379/12"
SENSORS = 1000
READINGS = 10_000_000
END = "2026-01-01T00:00:00Z"
TARGET_MS = 300
TARGETS = {"sensor list": ("median_ms", 100), "fleet status API": ("p95_ms", 50)}
ASSET_SENSORS = 10
ASSET_CODE = "BENCH-ASSET-10"
STORM_ALERTS = 1000
# The SQL the sensor list needs, without Django: its page of sensors, their latest readings, their sparklines
# (hourly means over each sensor's last 24 hours of signal, as readings.selectors reads them without TimescaleDB).
LIST_PAGE_SQL = """
SELECT s.id, s.sensor_id, s.sensor_type, s.unit, s.status, s.sampling_interval, s.normal_min, s.normal_max,
       a.code, a.name
FROM sensors_sensor s JOIN sensors_asset a ON a.id = s.asset_id ORDER BY s.sensor_id, s.id DESC LIMIT 100
"""
LATEST_SQL = """
SELECT s.id, r.time, r.value, r.quality FROM unnest(%s::bigint[]) AS s(id)
LEFT JOIN LATERAL (SELECT time, value, quality FROM readings_reading WHERE sensor_id = s.id
                   ORDER BY time DESC LIMIT 1) r ON true
"""
SPARKLINE_SQL = """
SELECT w.pk, date_bin('1 hour'::interval, r.time, '2000-01-01'::timestamptz) AS hour, avg(r.value)
FROM unnest(%s::bigint[], %s::timestamptz[]) AS w(pk, stop)
CROSS JOIN LATERAL (SELECT time, value FROM readings_reading
                    WHERE sensor_id = w.pk AND time >= w.stop - interval '24 hours' AND time < w.stop) r
GROUP BY 1, 2 ORDER BY 1, 2
"""
FLEET_SQL = """
SELECT s.id, s.sensor_id, a.code, s.sensor_type, s.unit, s.status, s.sampling_interval, s.normal_min,
       s.normal_max, r.time, r.value, r.quality
FROM sensors_sensor s JOIN sensors_asset a ON a.id = s.asset_id
LEFT JOIN LATERAL (SELECT time, value, quality FROM readings_reading WHERE sensor_id = s.id
                   ORDER BY time DESC LIMIT 1) r ON true
ORDER BY s.sensor_id
"""
# The SQL the asset page's charts need: its ten sensors' means, minima and maxima per 30 minutes over 30 days (the
# chart's buckets at a 60-s sampling interval), up to the bucket after the newest reading (the page's anchored range).
ASSET_SQL = """
SELECT w.pk, extract(epoch FROM date_bin('30 minutes'::interval, r.time, '2000-01-01'::timestamptz))::bigint AS b,
       avg(r.value), min(r.value), max(r.value)
FROM unnest(%s::bigint[]) AS w(pk)
CROSS JOIN LATERAL (SELECT time, value FROM readings_reading
                    WHERE sensor_id = w.pk AND time >= %s AND time < %s) r
GROUP BY 1, 2 ORDER BY 1, 2
"""
# One asset of ten sensors (moved from their seeded assets), for the asset page.
ASSET_SCRIPT = """
from sensors.models import Asset, Sensor
first = Asset.objects.order_by("pk").first()
asset, _ = Asset.objects.get_or_create(code=%r, defaults={"name": "Bench asset of ten", "site": first.site})
pks = list(Sensor.objects.order_by("sensor_id").values_list("pk", flat=True)[1 : 1 + %d])
Sensor.objects.filter(pk__in=pks).update(asset=asset)
from mlops.models import Alert
Alert.objects.all().delete()  # a kept database starts without the storm of its last run
"""
STORM_SCRIPT = """
from django.utils import timezone
from mlops.choices import AlertKind, AlertSeverity
from mlops.models import Alert
from sensors.models import Sensor
now = timezone.now()
Alert.objects.bulk_create(
    Alert(sensor=sensor, kind=AlertKind.OFFLINE if n %% 10 == 0 else AlertKind.STALE,
          severity=AlertSeverity.CRITICAL if n %% 10 == 0 else AlertSeverity.WARNING,
          title=f"{sensor.sensor_id} is {'offline' if n %% 10 == 0 else 'stale'}")
    for n, sensor in enumerate(Sensor.objects.order_by("sensor_id")[:%d])
)
"""
USERNAME, PASSWORD = "bench-staff", "bench-password-9251"
ROTATE = 50
DEEP = 5000


def list_reference(conn) -> None:
    """The sensor list's queries, raw: the page, its latest readings, its sparklines."""
    rows = conn.execute(LIST_PAGE_SQL).fetchall()
    pks = [row[0] for row in rows]
    latest = conn.execute(LATEST_SQL, [pks]).fetchall()
    stops = {pk: time for pk, time, _, _ in latest if time is not None}
    conn.execute(SPARKLINE_SQL, [list(stops), list(stops.values())]).fetchall()


def fleet_reference(conn) -> None:
    conn.execute(FLEET_SQL).fetchall()


def asset_reference(conn, pks, start, end) -> None:
    conn.execute(ASSET_SQL, [pks, start, end]).fetchall()


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return (time.perf_counter() - started) * 1000


def manage(env, *args):
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cold", type=int, default=10, help="cold-cache requests per page (dashboard, list)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--keep", action="store_true", help="keep the database (and skip seeding when it exists)")
    parser.add_argument(
        "--readings",
        type=int,
        default=READINGS,
        help=f"readings to seed (default {READINGS:,})",
    )
    parser.add_argument(
        "--end",
        default=END,
        help=f"time of the last reading (default {END}: every sensor offline); 'now' gives a live fleet, whose "
        "last 24 hours hold 1.44M readings",
    )
    args = parser.parse_args()

    url = f"{args.server}/{DBNAME}"
    # At reduced size a sensor may hold fewer than DEEP readings: the deep page is half its readings deep then.
    deep = min(DEEP, args.readings // SENSORS // 2)
    env = production_env(os.environ, url, REDIS_URL=REDIS_URL)
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DBNAME]).fetchone()
        if not (args.keep and exists):
            conn.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DBNAME}")
            exists = None
    cache = redis.Redis.from_url(REDIS_URL)
    cache.flushdb()
    result: dict = {"sensors": SENSORS, "readings": args.readings, "end": args.end, "workers": args.workers}
    if not exists:
        manage(env, "migrate", "-v0")
        started = time.perf_counter()
        manage(
            env, "seed_data", "--sensors", str(SENSORS), "--readings", str(args.readings), "--end", args.end, "--quiet"
        )
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
    manage(env, "shell", "-v0", "-c", ASSET_SCRIPT % (ASSET_CODE, ASSET_SENSORS))
    with psycopg.connect(url) as conn:
        [(asset,)] = conn.execute("SELECT id FROM sensors_asset WHERE code = %s", [ASSET_CODE]).fetchall()
        [(readings,)] = conn.execute("SELECT count(*) FROM readings_reading").fetchall()
        assert readings == args.readings, readings
        asset_pks = [pk for (pk,) in conn.execute("SELECT id FROM sensors_sensor WHERE asset_id = %s", [asset])]
        [(newest,)] = conn.execute(
            "SELECT max(time) FROM readings_reading WHERE sensor_id = ANY(%s)", [asset_pks]
        ).fetchall()
        asset_end = newest.replace(minute=newest.minute // 30 * 30, second=0, microsecond=0) + timedelta(minutes=30)
        asset_range = (asset_pks, asset_end - timedelta(days=30), asset_end)
        pks = [pk for (pk,) in conn.execute("SELECT id FROM sensors_sensor ORDER BY sensor_id").fetchall()]
        deep_times = {}
        for pk in pks[:: SENSORS // ROTATE][:ROTATE]:
            [(moment,)] = conn.execute(
                "SELECT time FROM readings_reading WHERE sensor_id = %s ORDER BY time DESC OFFSET %s LIMIT 1",
                [pk, deep],
            ).fetchall()
            deep_times[pk] = moment
    rotation = list(deep_times)
    deep_name = f"readings browser, {deep:,} deep"

    pages = {
        "dashboard": lambda i: "/admin/",
        "sensor list": lambda i: "/admin/sensors/sensor/",
        "sensor page 30 days": lambda i: f"/admin/sensors/sensor/{rotation[i % ROTATE]}/change/?range=30d",
        "readings browser": lambda i: f"/admin/readings/browse/?sensor={rotation[i % ROTATE]}",
        deep_name: lambda i: (
            f"/admin/readings/browse/?sensor={rotation[i % ROTATE]}&"
            + urlencode({"before": deep_times[rotation[i % ROTATE]].isoformat()})
        ),
        "asset page 30 days": lambda i: f"/admin/sensors/asset/{asset}/change/?range=30d",
        "fleet status API": lambda i: "/api/v1/fleet/status",
    }
    checks = {
        "dashboard": b'id="sm-attention"',
        "sensor list": b'class="sm-sparkline"',
        "sensor page 30 days": b'id="sm-chart-data"',
        "readings browser": b'id="sm-readings"',
        deep_name: b'id="sm-readings"',
        "asset page 30 days": b"sm-asset-charts-data",
        "fleet status API": b'"counts"',
        "dashboard, 1,000-alert storm": b'id="sm-alert-groups"',
    }
    references = {
        "sensor list": list_reference,
        "fleet status API": fleet_reference,
        "asset page 30 days": lambda conn: asset_reference(conn, *asset_range),
    }
    reference_times: dict[str, list[float]] = {name: [] for name in references}
    times: dict[str, list[float]] = {name: [] for name in pages}
    cold: dict[str, list[float]] = {"dashboard": [], "sensor list": [], "fleet status API": []}
    storm: list[float] = []
    load_before = os.getloadavg()
    server = Gunicorn(env, args.workers)
    try:
        client = AdminClient(server.port)
        client.log_in(USERNAME, PASSWORD)
        raw = psycopg.connect(url, autocommit=True)
        for round_ in range(args.warmup + args.rounds):
            for name, path in pages.items():
                elapsed, body = client.timed_get(path(round_))
                if checks[name] not in body:
                    raise SystemExit(f"{name}: the page lacks {checks[name]!r}")
                if round_ >= args.warmup:
                    times[name].append(elapsed)
                if name in references:
                    reference = timed(references[name], raw)
                    if round_ >= args.warmup:
                        reference_times[name].append(reference)
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
        manage(env, "shell", "-v0", "-c", STORM_SCRIPT % STORM_ALERTS)
        for round_ in range(args.warmup + args.rounds):
            elapsed, body = client.timed_get("/admin/")
            if checks["dashboard, 1,000-alert storm"] not in body or b">1,000<" not in body:
                raise SystemExit("dashboard, 1,000-alert storm: no alert groups or total on the page")
            if round_ >= args.warmup:
                storm.append(elapsed)
        raw.close()
        load_during = os.getloadavg()
    finally:
        server.stop()
    times["dashboard, 1,000-alert storm"] = storm

    result["chart_points_30_days"] = len(chart["x"])
    result["load_average_before"] = [round(value, 2) for value in load_before]
    result["load_average_after"] = [round(value, 2) for value in load_during]
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["pages"] = {}
    print(f"{SENSORS:,} sensors, {args.readings:,} readings; gunicorn {args.workers} workers; {args.rounds} rounds")
    for name, values in times.items():
        row = summary(values)
        statistic, target = TARGETS.get(name, ("median_ms", TARGET_MS))
        if name in references:
            row["reference"] = summary(reference_times[name])
            row["ratio_to_reference"] = round(row["median_ms"] / row["reference"]["median_ms"], 2)
        result["pages"][name] = row
        verdict = "ok" if row[statistic] < target else "OVER TARGET"
        print(
            f"  {name:32s} median {row['median_ms']:7.1f} ms   p95 {row['p95_ms']:7.1f} ms   "
            f"(target {statistic.split('_')[0]} < {target} ms: {verdict})"
        )
        if name in references:
            print(
                f"  {'  raw SQL it needs':32s} median {row['reference']['median_ms']:7.1f} ms   "
                f"p95 {row['reference']['p95_ms']:7.1f} ms   (page / SQL: {row['ratio_to_reference']}x)"
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

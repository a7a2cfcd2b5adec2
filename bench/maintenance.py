"""Benchmark: the work order list and the asset page with 100,000 work orders over 1,000 assets (issue 14).

A fresh database (smartmaint_bench_maintenance on --server, default 127.0.0.1:5432; dropped at the end unless
--keep) is migrated and filled in a few seconds (bulk inserts, COPY for the work orders, one INSERT ... SELECT
for the findings): 1,000 assets on 10 sites with 2 sensors each, 20 technicians, and 100,000 work orders of the
last two years, most of them done (each with its finding: a confirmed fault or a false alarm), a quarter still
open, assigned, in progress or on hold (many overdue); one busy asset holds 2,000 of them and 30 alerts (8
open). The person timed is a Maintenance manager given every site, assigned a share of the work orders like each
technician. The app runs under gunicorn in production mode (DEBUG off, Redis cache on database 13, flushed);
one client logs in through the admin login form and requests, in each round, every page once, in turn:

- work order list: /admin/maintenance/workorder/ (100 a page, most urgent first)
- work order list, mine: ?mine=1&overdue=active (the "Mine" tab)
- work order list, overdue: ?overdue=1 (the "Overdue" tab)
- asset page: the busy asset's change page (its Maintenance section: open and past work orders, open alerts,
  the figures over 90 days; and its signals, here without readings)

Raw-SQL references, timed in the same rounds through psycopg: for each list, the page of 100 rows with their
asset and assignee and the count of the rows filtered, as the list needs them; for the asset page, the asset,
its open and past work orders, open alerts and the figures' aggregate. Each page is reported with its median,
p95 and ratio to its reference. Target: median under 300 ms per page. Results: bench/results/maintenance.json.

    flock /work/helpers/bench.lock .venv/bin/python bench/maintenance.py [--rounds 30] [--warmup 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import AdminClient, Gunicorn, manage, production_env, summary  # noqa: E402

DB = "smartmaint_bench_maintenance"
REDIS_URL = "redis://127.0.0.1:6379/13"
ASSETS = 1000
WORK_ORDERS = 100_000
SITES = 10
SENSORS_PER_ASSET = 2
TECHNICIANS = 20
BUSY_SHARE = 0.02  # of the work orders, on the busy asset
BUSY_ALERTS = 30
TARGET_MS = 300
USERNAME, PASSWORD = "bench-manager", "bench-password-7315"
BUSY_CODE = "BUSY-0000"
# Shares of the statuses (the rest are done).
STATUSES = [("open", 0.08), ("assigned", 0.08), ("in_progress", 0.06), ("on_hold", 0.03), ("cancelled", 0.05)]
ACTIVE = ("open", "assigned", "in_progress", "on_hold")
SERVICE_HOURS = {1: 4, 2: 24, 3: 72, 4: 168}

PAGE_SQL = """
SELECT w.id, w.title, w.priority, w.status, w.due_at, w.origin, a.id, a.code, a.name, a.site, u.id, u.username
FROM maintenance_workorder w JOIN sensors_asset a ON a.id = w.asset_id LEFT JOIN auth_user u ON u.id = w.assignee_id
WHERE {where} ORDER BY w.priority, w.due_at, w.id LIMIT 100
"""
COUNT_SQL = "SELECT count(*) FROM maintenance_workorder w WHERE {where}"
LIST_WHERE = {
    "work order list": ("true", lambda ctx: []),
    "work order list, mine": (
        "w.assignee_id = %s AND w.status = ANY(%s)",
        lambda ctx: [ctx["user_id"], list(ACTIVE)],
    ),
    "work order list, overdue": ("w.status = ANY(%s) AND w.due_at < now()", lambda ctx: [list(ACTIVE)]),
}
ASSET_SQL = [
    ("SELECT * FROM sensors_asset WHERE id = %s", lambda ctx: [ctx["asset_id"]]),
    (
        "SELECT w.*, s.sensor_id FROM maintenance_workorder w LEFT JOIN sensors_sensor s ON s.id = w.sensor_id "
        "WHERE w.asset_id = %s AND w.status = ANY(%s) ORDER BY w.priority, w.due_at, w.id LIMIT 11",
        lambda ctx: [ctx["asset_id"], list(ACTIVE)],
    ),
    (
        "SELECT w.*, s.sensor_id FROM maintenance_workorder w LEFT JOIN sensors_sensor s ON s.id = w.sensor_id "
        "WHERE w.asset_id = %s AND w.status = ANY(%s) ORDER BY w.updated_at DESC, w.id DESC LIMIT 11",
        lambda ctx: [ctx["asset_id"], ["done", "cancelled"]],
    ),
    (
        "SELECT al.*, s.sensor_id FROM mlops_alert al JOIN sensors_sensor s ON s.id = al.sensor_id "
        "WHERE s.asset_id = %s AND al.status <> 'resolved' ORDER BY al.opened_at DESC LIMIT 11",
        lambda ctx: [ctx["asset_id"]],
    ),
    (
        "SELECT count(*) FILTER (WHERE f.outcome = 'confirmed_fault'), "
        "avg(w.done_at - coalesce(w.started_at, w.created_at)) FILTER (WHERE f.outcome = 'confirmed_fault'), "
        "sum(coalesce(f.fault_end - f.fault_start, w.done_at - coalesce(w.started_at, w.created_at))) "
        "FILTER (WHERE f.outcome = 'confirmed_fault'), "
        "count(*) FILTER (WHERE w.origin IN ('alert', 'anomaly')), "
        "count(*) FILTER (WHERE w.origin IN ('alert', 'anomaly') AND f.outcome = 'false_alarm') "
        "FROM maintenance_finding f JOIN maintenance_workorder w ON w.id = f.work_order_id "
        "WHERE w.asset_id = %s AND w.status = 'done' "
        "AND coalesce(f.fault_start, w.created_at) >= now() - interval '90 days' "
        "AND coalesce(f.fault_start, w.created_at) < now()",
        lambda ctx: [ctx["asset_id"]],
    ),
]


# --- Data ---------------------------------------------------------------------------------------------------------


def build(*, assets: int = ASSETS, work_orders: int = WORK_ORDERS, seed: int = 0, now: datetime | None = None) -> dict:
    """The bench's plant in the current database (Django set up): assets on SITES sites with their sensors,
    TECHNICIANS technicians, the bench manager (USERNAME, every site), ``work_orders`` work orders (BUSY_SHARE of
    them on the busy asset, BUSY_CODE) with the findings of the done ones, and BUSY_ALERTS open alerts on the busy
    asset. Returns {"asset_id": the busy asset, "user_id": the manager, "work_orders": how many}."""
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from maintenance.choices import MaintenanceGroup
    from maintenance.models import WorkOrder
    from mlops.models import Alert
    from sensors.models import Asset, Sensor, UserSites

    rng = random.Random(seed)  # noqa: S311 (data, not secrets)
    now = now or datetime.now(UTC)
    sites = [f"Site {n:02d}" for n in range(SITES)]
    Asset.objects.bulk_create(
        [
            Asset(
                code=BUSY_CODE if n == 0 else f"A-{n:04d}",
                name=f"Machine {n}",
                site=sites[n % SITES],
                location=f"Line {n % 7} / Station {n % 13}",
            )
            for n in range(assets)
        ],
        batch_size=2000,
    )
    asset_ids = list(Asset.objects.order_by("pk").values_list("pk", flat=True))
    busy = Asset.objects.get(code=BUSY_CODE).pk
    Sensor.objects.bulk_create(
        [
            Sensor(
                sensor_id=f"s-{asset_pk}-{k}",
                asset_id=asset_pk,
                sensor_type=("temperature", "vibration")[k % 2],
                unit=("°C", "mm/s")[k % 2],
                normal_min=0.0,
                normal_max=100.0,
            )
            for asset_pk in asset_ids
            for k in range(SENSORS_PER_ASSET)
        ],
        batch_size=2000,
    )
    sensors_of: dict[int, list[int]] = {}
    for pk, asset_pk in Sensor.objects.values_list("pk", "asset_id"):
        sensors_of.setdefault(asset_pk, []).append(pk)

    User.objects.bulk_create(
        [User(username=f"tech-{n:02d}", password="!", is_staff=True) for n in range(TECHNICIANS)]  # noqa: S106
    )
    technicians = list(User.objects.filter(username__startswith="tech-").values_list("pk", flat=True))
    manager = User.objects.create_user(USERNAME, password=PASSWORD, is_staff=True)
    manager.groups.add(Group.objects.get(name=MaintenanceGroup.MANAGER))
    UserSites.objects.create(user=manager, sites=[], all_sites=True)
    assignees = [*technicians, manager.pk]

    fields = [field for field in WorkOrder._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(field.column for field in fields)
    busy_count = int(work_orders * BUSY_SHARE)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY maintenance_workorder ({columns}) FROM STDIN") as copy:
            for n in range(work_orders):
                asset_pk = busy if n < busy_count else rng.choice(asset_ids)
                draw, status = rng.random(), "done"
                for name, share in STATUSES:
                    if draw < share:
                        status = name
                        break
                    draw -= share
                active = status in ACTIVE
                # Active work is recent (a third of it overdue); the rest spreads over two years.
                created = now - timedelta(hours=rng.uniform(1, 24 * 21 if active else 24 * 730))
                priority = rng.choice((1, 2, 2, 3, 3, 3, 4))
                origin = rng.choice(("alert", "alert", "anomaly", "manual"))
                row = {
                    "asset_id": asset_pk,
                    "sensor_id": rng.choice(sensors_of[asset_pk]) if origin != "manual" else None,
                    "title": f"{('Vibration high', 'Temperature drift', 'Leak', 'Noise', 'Inspection')[n % 5]} #{n}",
                    "description": "",
                    "priority": priority,
                    "status": status,
                    "assignee_id": None if status == "open" else rng.choice(assignees),
                    "due_at": created + timedelta(hours=SERVICE_HOURS[priority] * rng.uniform(1, 8 if active else 1)),
                    "origin": origin,
                    "alert_id": None,
                    "anomaly_id": None,
                    "created_by_id": manager.pk,
                    "created_at": created,
                    "assigned_at": created + timedelta(minutes=30) if status != "open" else None,
                    "started_at": created + timedelta(hours=2)
                    if status in ("in_progress", "on_hold", "done")
                    else None,
                    "on_hold_at": created + timedelta(hours=3) if status == "on_hold" else None,
                    "done_at": created + timedelta(hours=rng.uniform(3, 48)) if status == "done" else None,
                    "cancelled_at": created + timedelta(hours=5) if status == "cancelled" else None,
                    "updated_at": created + timedelta(hours=6),
                    "overdue_reminded_at": None,
                }
                copy.write_row([row[field.attname] for field in fields])
        # Every done work order has its finding: two thirds confirmed faults (started an hour before the work
        # order, lasting a few hours), a third false alarms.
        cursor.execute(
            """
            INSERT INTO maintenance_finding (work_order_id, outcome, fault_kind, fault_start, fault_end, cause,
                                             action, time_spent_minutes, parts_used, label_id, recorded_by_id,
                                             recorded_at)
            SELECT id, CASE WHEN id % 3 = 0 THEN 'false_alarm' ELSE 'confirmed_fault' END,
                   CASE WHEN id % 3 = 0 THEN '' ELSE 'spike' END,
                   CASE WHEN id % 3 = 0 THEN NULL ELSE created_at - interval '1 hour' END,
                   CASE WHEN id % 3 = 0 OR id % 5 = 0 THEN NULL ELSE created_at + interval '3 hours' END,
                   'Found on site', 'Repaired', 60, '', NULL, assignee_id, done_at
            FROM maintenance_workorder WHERE status = 'done'
            """
        )
    # One unresolved alert per sensor and kind: the first of them open, the rest resolved (its history).
    kinds = ("anomaly", "out_of_range", "stale", "offline")
    unresolved = SENSORS_PER_ASSET * len(kinds)
    Alert.objects.bulk_create(
        [
            Alert(
                sensor_id=sensors_of[busy][n % SENSORS_PER_ASSET],
                kind=kinds[(n // SENSORS_PER_ASSET) % len(kinds)],
                severity=("critical", "warning", "info")[n % 3],
                title=f"Alert {n} on the busy machine",
                status="open" if n < unresolved else "resolved",
                resolved_at=None if n < unresolved else now - timedelta(days=n),
            )
            for n in range(BUSY_ALERTS)
        ]
    )
    with connection.cursor() as cursor:
        for table in ("maintenance_workorder", "maintenance_finding", "sensors_asset", "sensors_sensor"):
            cursor.execute(f"ANALYZE {table}")
    return {"asset_id": busy, "user_id": manager.pk, "work_orders": work_orders}


# --- Measuring ------------------------------------------------------------------------------------------------------


def pages(ctx: dict) -> dict[str, str]:
    """The paths timed, by name."""
    base = "/admin/maintenance/workorder/"
    return {
        "work order list": base,
        "work order list, mine": f"{base}?{urlencode({'mine': '1', 'overdue': 'active'})}",
        "work order list, overdue": f"{base}?overdue=1",
        "asset page": f"/admin/sensors/asset/{ctx['asset_id']}/change/",
    }


# What each page must show: its table of work orders (the asset page: its Maintenance section's).
CHECKS = {
    "work order list": b'id="result_list"',
    "work order list, mine": b'id="result_list"',
    "work order list, overdue": b'id="result_list"',
    "asset page": b'id="sm-figure-failures"',
}


def reference(conn, name: str, ctx: dict) -> None:
    """The raw SQL ``name`` needs, through a psycopg connection."""
    if name in LIST_WHERE:
        where, params = LIST_WHERE[name]
        conn.execute(PAGE_SQL.format(where=where), params(ctx)).fetchall()
        conn.execute(COUNT_SQL.format(where=where), params(ctx)).fetchall()
        return
    for sql, params in ASSET_SQL:
        conn.execute(sql, params(ctx)).fetchall()


def measure(*, port: int, database_url: str, ctx: dict, rounds: int, warmup: int) -> dict:
    """Each page and its raw-SQL reference, ``warmup`` + ``rounds`` rounds, in turn; {name: {page and reference
    summaries, ratio}}."""
    import psycopg

    paths = pages(ctx)
    times: dict[str, list[float]] = {name: [] for name in paths}
    references: dict[str, list[float]] = {name: [] for name in paths}
    client = AdminClient(port)
    client.log_in(USERNAME, PASSWORD)
    with psycopg.connect(database_url, autocommit=True) as raw:
        for round_ in range(warmup + rounds):
            for name, path in paths.items():
                elapsed, body = client.timed_get(path)
                if CHECKS[name] not in body:
                    raise SystemExit(f"{name}: the page lacks {CHECKS[name]!r}")
                started = time.perf_counter()
                reference(raw, name, ctx)
                sql_ms = (time.perf_counter() - started) * 1000
                if round_ >= warmup:
                    times[name].append(elapsed)
                    references[name].append(sql_ms)
    result = {}
    for name in paths:
        row = summary(times[name])
        row["reference"] = summary(references[name])
        row["ratio_to_reference"] = round(row["median_ms"] / max(row["reference"]["median_ms"], 0.1), 1)
        result[name] = row
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work-orders", type=int, default=WORK_ORDERS)
    parser.add_argument("--assets", type=int, default=ASSETS)
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--keep", action="store_true", help="keep the database (and reuse it when it exists)")
    args = parser.parse_args()

    import psycopg
    import redis

    url = f"{args.server}/{DB}"
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone()
        if not (args.keep and exists):
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DB}")
            exists = None
    env = production_env(os.environ, url, REDIS_URL=REDIS_URL)
    cache = redis.Redis.from_url(REDIS_URL)
    cache.flushdb()
    result: dict = {"assets": args.assets, "work_orders": args.work_orders, "workers": args.workers}
    if not exists:
        manage(env, "migrate", "-v0")
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "smartmaint.settings"
    import django

    django.setup()
    from django.contrib.auth.models import User

    from sensors.models import Asset

    if exists:
        ctx = {
            "asset_id": Asset.objects.get(code=BUSY_CODE).pk,
            "user_id": User.objects.get(username=USERNAME).pk,
        }
    else:
        started = time.perf_counter()
        ctx = build(assets=args.assets, work_orders=args.work_orders)
        result["build_seconds"] = round(time.perf_counter() - started, 1)
        print(f"built {args.work_orders:,} work orders over {args.assets:,} assets in {result['build_seconds']} s")
    from django.db import connections

    connections.close_all()

    load_before = os.getloadavg()
    server = Gunicorn(env, args.workers)
    try:
        result["pages"] = measure(port=server.port, database_url=url, ctx=ctx, rounds=args.rounds, warmup=args.warmup)
    finally:
        server.stop()
    result["load_average_before"] = [round(value, 2) for value in load_before]
    result["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(
        f"{args.work_orders:,} work orders, {args.assets:,} assets; gunicorn {args.workers} workers; "
        f"{args.rounds} rounds"
    )
    for name, row in result["pages"].items():
        verdict = "ok" if row["median_ms"] < TARGET_MS else "OVER TARGET"
        print(
            f"  {name:26s} median {row['median_ms']:7.1f} ms   p95 {row['p95_ms']:7.1f} ms   "
            f"(target median < {TARGET_MS} ms: {verdict})"
        )
        print(
            f"  {'  raw SQL it needs':26s} median {row['reference']['median_ms']:7.1f} ms   "
            f"p95 {row['reference']['p95_ms']:7.1f} ms   (page / SQL: {row['ratio_to_reference']}x)"
        )
    print(f"  load average before {result['load_average_before']}, after {result['load_average_after']}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "maintenance.json").write_text(json.dumps(result, indent=2))
    cache.flushdb()
    if not args.keep:
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

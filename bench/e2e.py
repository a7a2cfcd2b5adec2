"""Benchmark: continuous operation end to end (issue 13): a fleet ingests through the API while Celery runs the jobs.

On the local PostgreSQL (database smartmaint_bench_e2e, recreated, dropped at the end unless --keep), Redis database
--redis-db (flushed: the cache and the broker), a local MLflow store in a temporary directory:

Setup (not timed). A fleet of --sensors sensors (4 per asset) seeded with --history hours of readings 10 s apart
ending now (with seed_data's labelled faults), every detector trained and promoted (`train_models --promote`: the
supervised ones per sensor type and each asset's normal-behaviour model); one subscriber to warning alerts and up.
The history is scored once and its alerts marked mailed, as in steady state.

Live (timed). gunicorn serves the API as the image does (production settings); two Celery workers (one on the
scoring queue, one on default, ingest, mail and training) and beat run the default schedule (scoring, alert rules
and alert mail every minute; scoring also SCORING_AFTER_INGEST_SECONDS after readings arrive); mail goes to a real
SMTP server in this process. Every --interval seconds each sensor sends its next reading (its seeded signal
continued), POSTed in batches like gateways would, for --minutes. At mid-run --faults sensors start a fault (half a
level step of 70 % of the normal range, half a flatline), their onsets staggered over one window so that every
position in a window is measured.

Measured: from the arrival of a fault's first reading (its ingest request answered) to the first anomaly row of
that sensor covering it (median, p95; target p95 < 2 min); from each alert opening during the run to its mail
received by the SMTP server (median, p95; target p95 < 2 min); after ingest stops and one final drain (a scoring
run once the grace has passed for every window), the readings left unscored (target 0); duplicate anomalies (same
sensor, window and model version) and duplicate mails (an alert mailed twice to the subscriber) (target 0).

Also measured: the share of live windows flagged on sensors without an injected fault (false alarms, apart from
the assets seed_data makes degrade, whose degradation continues).

When it may run: most seeded sensors follow a plant's shifts (readings.synthetic: a step at 06:00, 14:00 and
22:00 UTC). The normal-behaviour model learns such a daily profile only from PROFILE_MIN_DAYS (2) days of baseline
(a plant trains on NORMAL_BASELINE_DAYS, 14); --history hours cannot teach it, so a shift change inside the
history or the live period is, to the model, a departure on most sensors of the fleet (the first runs, baseline
across 22:00, flagged 30-45 % of the windows of sensors without a fault; the same fleet and model flag none
where the period holds no shift change). The benchmark therefore refuses to start where history + setup + live
would hold a shift change, and says when it can (--any-time: run anyway, figures to be read with that in mind).

    .venv/bin/python bench/e2e.py [--sensors 1000] [--minutes 10] [--faults 20] [--keep] [--any-time]

Writes bench/results/e2e.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import free_port, manage, production_env, start_image_gunicorn  # noqa: E402

DB = "smartmaint_bench_e2e"
logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO
INTERVAL = 10  # seconds between two readings of a sensor
WINDOW = 10  # readings per window (mlops.features.WINDOW)
BATCH = 50  # readings per ingest request
SENDERS = 4  # concurrent gateways
SUBSCRIBER = "oncall@example.com"
ALERT_LINK = re.compile(r"/admin/mlops/alert/(\d+)/change/")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict:
    return {
        "count": len(values),
        "median_s": statistics.median(values) if values else None,
        "p95_s": percentile(values, 95),
        "max_s": max(values) if values else None,
    }


SHIFT_CHANGES = (6, 14, 22)  # hours (UTC) where readings.synthetic's shift-cycle sensors step
SETUP_MARGIN = timedelta(minutes=40)  # seeding, training and scoring the history, on a loaded machine


def shift_changes(start: datetime, end: datetime) -> list[datetime]:
    """The shift changes of the seeded fleet in (start, end]."""
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    moments = [day + timedelta(days=d, hours=h) for d in range((end - day).days + 1) for h in SHIFT_CHANGES]
    return [moment for moment in moments if start < moment <= end]


# --- The SMTP server: every message with the time it was received ------------------------------------------------


class MailLog:
    def __init__(self):
        self.lock = threading.Lock()
        self.received: list[tuple[float, list[str], str]] = []  # (wall time, recipients, body)

    async def handle_DATA(self, server, session, envelope):
        body = envelope.original_content.decode("utf-8", "replace")
        with self.lock:
            self.received.append((time.time(), list(envelope.rcpt_tos), body))
        return "250 OK"

    def alert_mails(self) -> dict[int, list[float]]:
        """Per alert pk, the times a message linking to it reached the subscriber (a digest links to several)."""
        sent: dict[int, list[float]] = {}
        with self.lock:
            for moment, rcpts, body in self.received:
                for pk in {int(pk) for pk in ALERT_LINK.findall(body)}:
                    sent.setdefault(pk, []).extend([moment] * rcpts.count(SUBSCRIBER))
        return sent


# --- The fleet's live signal ------------------------------------------------------------------------------------


class Fleet:
    """Each sensor's seeded signal continued past the history's end (no new random faults), plus injected ones."""

    def __init__(self, *, sensors: list, history_end: datetime, history_count: int, faults: int, fault_at: datetime):
        import numpy as np

        from readings.synthetic import PROFILES, SensorSignal, SignalParams, sensor_spec

        self.np = np
        self.history_end = np.datetime64(history_end.replace(tzinfo=None), "us")
        self.history_count = history_count
        self.signals, self.ids, self.ranges = {}, {}, {}
        for sensor in sensors:
            number = int(sensor.sensor_id.rsplit("-", 1)[1])
            profile = PROFILES[sensor.sensor_type]
            params = SignalParams(
                number=number,
                sensor_type=sensor.sensor_type,
                asset_number=sensor_spec(number).asset.number,
                normal_min=sensor.normal_min,
                normal_max=sensor.normal_max,
            )
            # As seed_data made the history (same count, end and seed), to continue it: same baseline, phase,
            # noise, and a degrading asset's degradation kept where the history ended.
            self.signals[sensor.pk] = SensorSignal(
                params, count=history_count, end=self.history_end, interval=INTERVAL, seed=20240601, anomaly_rate=0.01
            )
            self.ids[sensor.pk] = sensor.sensor_id
            self.ranges[sensor.pk] = (sensor.normal_max - sensor.normal_min, profile)
        # Faults on sensors spread over the fleet, onsets staggered over one window from fault_at.
        pks = sorted(self.signals)
        chosen = pks[:: max(1, len(pks) // faults)][:faults] if faults else []
        self.faults = {
            pk: {
                "kind": "step" if i % 2 == 0 else "flatline",
                "onset": fault_at + timedelta(seconds=INTERVAL * (i % WINDOW)),
            }
            for i, pk in enumerate(chosen)
        }
        self.flat_value: dict[int, float] = {}
        self.rng = np.random.default_rng(7)

    def value(self, pk: int, moment: datetime) -> float:
        np = self.np
        signal = self.signals[pk]
        at = np.datetime64(moment.replace(tzinfo=None), "us")
        index = self.history_count - 1 + int((at - self.history_end) / np.timedelta64(INTERVAL, "s"))
        clean = signal._clean(np.array([index]), np.array([at]))[0]
        value = clean + self.rng.normal(0.0, signal.noise)
        width, profile = self.ranges[pk]
        fault = self.faults.get(pk)
        if fault and moment >= fault["onset"]:
            if fault["kind"] == "step":
                value += 0.7 * width
            else:
                value = self.flat_value.setdefault(pk, value)
        return float(round(min(max(value, profile.physical_min), profile.physical_max), profile.decimals))


# --- Processes --------------------------------------------------------------------------------------------------


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen, timeout: float = 60) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "smartmaint", *args]


def wait_workers(names: list[str], timeout: float = 300) -> None:
    from smartmaint.celery import app

    deadline = time.monotonic() + timeout
    while True:
        answered = {name for reply in app.control.ping(destination=names, timeout=1.0) or [] for name in reply}
        if answered >= set(names):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"workers not ready: {sorted(set(names) - answered)}")


# --- Setup ------------------------------------------------------------------------------------------------------


def setup(env: dict, *, sensors: int, history_hours: float, end: datetime) -> int:
    """Seed, train; return the readings per sensor seeded."""
    count = int(history_hours * 3600 / INTERVAL)
    manage(env, "migrate", "-v0")
    manage(
        env,
        "seed_data",
        "--sensors",
        str(sensors),
        "--readings",
        str(sensors * count),
        "--interval",
        str(INTERVAL),
        "--end",
        end.isoformat(),
        "--quiet",
    )
    import psycopg

    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE readings_reading")
    manage(env, "train_models", "--promote", capture=True)
    return count


def fill_gap(fleet: Fleet, *, sensors: list, start: datetime, end: datetime) -> int:
    """The readings from the history's end to the live start (setup took that long), stored directly."""
    import numpy as np

    from readings.services import ReadingBatch, readings_insert

    steps = int((end - start).total_seconds() // INTERVAL)
    moments = [start + timedelta(seconds=INTERVAL * (i + 1)) for i in range(steps)]
    if not moments:
        return 0
    pks, micros, values = [], [], []
    for sensor in sensors:
        for moment in moments:
            pks.append(sensor.pk)
            micros.append(int(moment.timestamp() * 1_000_000))
            values.append(fleet.value(sensor.pk, moment))
    batch = ReadingBatch.from_columns(
        sensor=np.array(pks, dtype=np.int64),
        time=np.array(micros, dtype="datetime64[us]"),
        value=np.array(values),
        quality=np.ones(len(pks)),
    )
    return readings_insert(batch=batch)


# --- Live -------------------------------------------------------------------------------------------------------


class Senders:
    """SENDERS gateways, each POSTing its share of a tick's readings in batches of BATCH over a kept connection."""

    def __init__(self, port: int, key: str):
        self.port, self.key = port, key
        self.conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(SENDERS)]
        self.request_s: list[float] = []
        self.accepted = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def send(self, items: list[dict]) -> float:
        """POST every item (split over the gateways); returns when all were answered (the arrival time)."""
        shares = [items[i::SENDERS] for i in range(SENDERS)]
        threads = [threading.Thread(target=self._post_all, args=(i, share)) for i, share in enumerate(shares)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.time()

    def _post_all(self, index: int, items: list[dict]) -> None:
        headers = {"Authorization": f"Api-Key {self.key}", "Content-Type": "application/json"}
        for first in range(0, len(items), BATCH):
            body = json.dumps({"readings": items[first : first + BATCH]}).encode()
            started = time.perf_counter()
            for attempt in range(3):
                try:
                    conn = self.conns[index]
                    conn.request("POST", "/api/v1/readings/ingest", body=body, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    break
                except (OSError, http.client.HTTPException) as exc:
                    self.conns[index] = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                    if attempt == 2:
                        with self.lock:
                            self.errors.append(repr(exc))
                        return
            with self.lock:
                self.request_s.append(time.perf_counter() - started)
                if response.status != 200:
                    self.errors.append(f"{response.status} {payload[:200]!r}")
                else:
                    self.accepted += json.loads(payload)["accepted"]


def live(fleet: Fleet, senders: Senders, *, sensors: list, first: datetime, ticks: int) -> dict:
    """One reading per sensor per tick, sent at the tick's time; the arrival of each fault's first reading."""
    arrivals: dict[int, float] = {}
    late = 0
    for tick in range(ticks):
        moment = first + timedelta(seconds=INTERVAL * tick)
        wait = moment.timestamp() - time.time()
        if wait > 0:
            time.sleep(wait)
        else:
            late += 1
        items = [
            {"sensor_id": fleet.ids[sensor.pk], "time": moment.isoformat(), "value": fleet.value(sensor.pk, moment)}
            for sensor in sensors
        ]
        arrived = senders.send(items)
        for pk, fault in fleet.faults.items():
            if pk not in arrivals and moment >= fault["onset"]:
                arrivals[pk] = arrived
        if tick % max(1, 60 // INTERVAL) == 0:
            print(f"  {moment:%H:%M:%S} tick {tick + 1}/{ticks}, {senders.accepted:,} readings stored", flush=True)
    return {"arrivals": arrivals, "late_ticks": late}


def wait_idle(timeout: float = 300) -> None:
    """Until no worker has a task running, reserved or scheduled (for countdowns), twice in a row."""
    from smartmaint.celery import app

    deadline, quiet = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and quiet < 2:
        inspect = app.control.inspect(timeout=2.0)
        busy = sum(
            len(tasks)
            for kind in (inspect.active(), inspect.reserved(), inspect.scheduled())
            for tasks in (kind or {}).values()
        )
        quiet = quiet + 1 if busy == 0 else 0
        time.sleep(1)


# --- Figures ----------------------------------------------------------------------------------------------------


def measure(fleet: Fleet, *, arrivals: dict, live_start: datetime, mail: MailLog) -> dict:
    from django.db import connection
    from django.db.models import Count, Max

    from mlops.models import Alert, Anomaly, ScoringRun

    detection, by_kind, missed, each = [], {}, [], []
    for pk, fault in fleet.faults.items():
        first = Anomaly.objects.filter(sensor_id=pk, end__gte=fault["onset"]).order_by("created_at").first()
        # Where the fault's first reading falls in its window (0: the first of WINDOW readings).
        position = int((fault["onset"].timestamp() // INTERVAL) % WINDOW)
        if first is None or pk not in arrivals:
            missed.append(fleet.ids[pk])
            each.append({"sensor": fleet.ids[pk], "kind": fault["kind"], "position": position, "seconds": None})
            continue
        seconds = first.created_at.timestamp() - arrivals[pk]
        detection.append(seconds)
        by_kind.setdefault(fault["kind"], []).append(seconds)
        each.append(
            {
                "sensor": fleet.ids[pk],
                "kind": fault["kind"],
                "position": position,
                "seconds": round(seconds, 1),
                # Found before its window ended (a frozen value's provisional anomaly, settled since).
                "early": first.created_at < first.start + timedelta(seconds=INTERVAL * WINDOW),
                "detector": first.detector,
            }
        )

    sent = mail.alert_mails()
    alerts = list(Alert.objects.filter(opened_at__gte=live_start).values("pk", "opened_at", "kind", "notify_state"))
    mail_s, unmailed = [], []
    for alert in alerts:
        times = sent.get(alert["pk"])
        if times:
            mail_s.append(min(times) - alert["opened_at"].timestamp())
        else:
            unmailed.append(alert["pk"])
    duplicate_mails = sum(len(times) - 1 for times in sent.values() if len(times) > 1)

    duplicate_anomalies = (
        Anomaly.objects.values("sensor_id", "start", "model_name", "model_version")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    with connection.cursor() as cursor:
        # Readings at or after their sensor's watermark (none: every window holding them was scored), and
        # sensors with readings that were never scored at all.
        cursor.execute(
            """
            SELECT count(*) FROM readings_reading r
            LEFT JOIN mlops_scoringwatermark w ON w.sensor_id = r.sensor_id
            WHERE r.time >= %s AND (w.scored_until IS NULL OR r.time >= w.scored_until)
            """,
            [live_start - timedelta(hours=1)],
        )
        unscored = cursor.fetchone()[0]
    runs = ScoringRun.objects.filter(created_at__gte=live_start)
    # False alarms: live windows flagged on sensors without an injected fault, apart from the degrading assets'.
    from readings.models import Reading

    span = timedelta(seconds=WINDOW * INTERVAL)
    last = Reading.objects.aggregate(last=Max("time"))["last"]
    windows = max(int((last - live_start) / span), 0) if last else 0
    clean = [pk for pk in fleet.signals if pk not in fleet.faults and fleet.signals[pk].degradation_start is None]
    flagged = Anomaly.objects.filter(sensor_id__in=clean, start__gte=live_start).count()
    return {
        "clean_windows_flagged": {
            "sensors": len(clean),
            "windows": windows * len(clean),
            "flagged": flagged,
            "share": flagged / (windows * len(clean)) if windows and clean else None,
        },
        "detection": summary(detection),
        "detection_by_kind": {kind: summary(values) for kind, values in by_kind.items()},
        "faults_missed": missed,
        "faults_each": each,
        "mail": summary(mail_s),
        "alerts_opened": len(alerts),
        "alerts_by_kind": dict(
            Alert.objects.filter(opened_at__gte=live_start).values_list("kind").annotate(n=Count("pk")).order_by()
        ),
        "alerts_unmailed": len(unmailed),
        "messages": len(mail.received),
        "duplicate_mails": duplicate_mails,
        "duplicate_anomalies": duplicate_anomalies,
        "anomalies": Anomaly.objects.filter(created_at__gte=live_start).count(),
        "unscored_readings": unscored,
        "scoring_runs": runs.count(),
        "scoring_runs_windows": sum(runs.values_list("windows", flat=True)),
    }


def task_counts(live_start: datetime) -> dict:
    from django.db.models import Count
    from django_celery_results.models import TaskResult

    rows = (
        TaskResult.objects.filter(date_created__gte=live_start)
        .values_list("task_name", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts: dict[str, dict[str, int]] = {}
    for name, status, n in rows:
        counts.setdefault(name or "?", {})[status] = n
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0, help="Minutes of live ingest. Default 10.")
    parser.add_argument("--faults", type=int, default=20, help="Sensors given a fault at mid-run. Default 20.")
    parser.add_argument("--history", type=float, default=4.0, help="Hours of seeded history. Default 4.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument(
        "--any-time",
        action="store_true",
        help="Run even where the history or the live period holds a shift change (see the module's docstring).",
    )
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("BENCH_REDIS_DB", "2")))
    args = parser.parse_args()

    now = datetime.now(UTC)
    changes = shift_changes(now - timedelta(hours=args.history), now + SETUP_MARGIN + timedelta(minutes=args.minutes))
    if changes and not args.any_time:
        after = changes[-1] + timedelta(hours=args.history)
        raise SystemExit(
            f"a shift change at {changes[0]:%H:%M} UTC falls in the history or the live period, which a normal model "
            f"of {args.history:g} h cannot know (see the docstring): run after {after:%H:%M} UTC, or with --any-time"
        )

    import psycopg
    import redis
    from aiosmtpd.controller import Controller

    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    var = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    logs = var / "logs"
    logs.mkdir()

    mail = MailLog()
    smtp_port = free_port()
    smtp = Controller(mail, hostname="127.0.0.1", port=smtp_port)
    smtp.start()

    env = production_env(
        os.environ,
        f"{args.server}/{DB}",
        DJANGO_VAR_DIR=str(var),
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        EMAIL_SMTP_HOST="127.0.0.1",
        EMAIL_SMTP_PORT=str(smtp_port),
        EMAIL_SMTP_USE_TLS="false",
        LOG_LEVEL="INFO",
    )
    for leaked in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(leaked, None)

    result: dict = {"sensors": args.sensors, "minutes": args.minutes, "faults": args.faults, "interval_s": INTERVAL}
    result["shift_changes"] = [f"{moment:%H:%M}" for moment in changes]
    started = time.perf_counter()
    history_end = datetime.fromtimestamp(int(time.time()) // INTERVAL * INTERVAL, tz=UTC)
    count = setup(env, sensors=args.sensors, history_hours=args.history, end=history_end)
    result["setup_s"] = round(time.perf_counter() - started)
    print(f"setup (seed {args.sensors} sensors x {count} readings, train): {result['setup_s']} s", flush=True)

    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "smartmaint.settings"
    import django

    django.setup()
    from django.contrib.auth.models import User

    from mlops.models import Alert, AlertSubscription
    from mlops.runs import scoring_run
    from sensors.models import APIKey, Sensor

    sensors = list(Sensor.objects.order_by("pk"))
    _, key = APIKey.objects.create_key(name="bench-e2e", scope="read_ingest")

    # Steady state: the history scored (watermarks at its end) and its alerts mailed already.
    from django.utils import timezone

    scoring_run()
    Alert.objects.update(notify_state="sent", notified_at=timezone.now())
    user = User.objects.create_user("oncall", email=SUBSCRIBER, is_staff=True)
    AlertSubscription.objects.create(user=user, min_severity="warning")

    web, port = start_image_gunicorn(env, stdout=(logs / "web.log").open("w"), stderr=subprocess.STDOUT)
    scorer, other = f"scoring-{os.getpid()}@bench", f"other-{os.getpid()}@bench"
    workers = [
        start(celery("worker", "-Q", "scoring", "-n", scorer, "-c", "1", "-l", "INFO"), env, logs / "scoring.log"),
        start(
            celery("worker", "-Q", "default,ingest,mail,training", "-n", other, "-c", "1", "-l", "INFO"),
            env,
            logs / "other.log",
        ),
    ]
    wait_workers([scorer, other])

    ticks = int(args.minutes * 60 / INTERVAL)
    first = datetime.fromtimestamp((int(time.time()) // INTERVAL + 2) * INTERVAL, tz=UTC)
    fault_at = first + timedelta(seconds=INTERVAL * (ticks // 2))
    fleet = Fleet(sensors=sensors, history_end=history_end, history_count=count, faults=args.faults, fault_at=fault_at)
    # The readings since the history's end (setup took that long), so that no sensor looks stale or has a gap.
    gap = fill_gap(fleet, sensors=sensors, start=history_end, end=first - timedelta(seconds=INTERVAL))
    beat = start(celery("beat", "-l", "INFO", "--pidfile="), env, logs / "beat.log")
    print(f"gap since the history filled ({gap:,} readings); live from {first:%H:%M:%S} for {ticks} ticks", flush=True)

    senders = Senders(port, key)
    live_start = datetime.now(UTC)
    try:
        outcome = live(fleet, senders, sensors=sensors, first=first, ticks=ticks)
        last = first + timedelta(seconds=INTERVAL * (ticks - 1))
        # Stop the schedule, let the queued work finish, then one final drain: a scoring run once every window
        # is past the grace (what the next runs would do as time passes), mailing what it opens.
        stop(beat)
        time.sleep(5)
        wait_idle()
        from django.conf import settings

        drain_end = last + timedelta(seconds=settings.SCORING_GRACE_SECONDS + 2 * WINDOW * INTERVAL)
        drained = scoring_run(end=drain_end).summary()
        time.sleep(2)
    finally:
        stop(beat)
        for worker in workers:
            stop(worker)
        stop(web)
        smtp.stop()

    result |= measure(fleet, arrivals=outcome["arrivals"], live_start=live_start, mail=mail)
    result["drain"] = {"windows": drained["windows"], "anomalies": drained["anomalies"]}
    result["readings_sent"] = senders.accepted
    result["ingest_errors"] = senders.errors[:5]
    result["ingest_request"] = summary(senders.request_s)
    result["late_ticks"] = outcome["late_ticks"]
    result["tasks"] = task_counts(live_start)

    from django.db import connections

    connections.close_all()
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "e2e.json").write_text(json.dumps(result, indent=2, default=str))
    if not args.keep:
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    report(result)
    return 0


def _s(value) -> str:
    return "-" if value is None else f"{value:.1f} s"


def report(result: dict) -> None:
    detection, mail = result["detection"], result["mail"]
    print(
        f"{result['sensors']:,} sensors, a reading each every {result['interval_s']} s for {result['minutes']} min: "
        f"{result['readings_sent']:,} readings stored through the API ({len(result['ingest_errors'])} errors), "
        f"request p95 {_s(result['ingest_request']['p95_s'])}, {result['late_ticks']} ticks sent late"
    )
    print(
        f"  fault's first reading -> its anomaly: median {_s(detection['median_s'])}, p95 {_s(detection['p95_s'])}, "
        f"max {_s(detection['max_s'])} ({detection['count']} of {result['faults']} faults; missed "
        f"{result['faults_missed']}) (target p95 < 120 s)"
    )
    for kind, values in result["detection_by_kind"].items():
        print(f"    {kind}: median {_s(values['median_s'])}, p95 {_s(values['p95_s'])} ({values['count']})")
    early = sum(1 for item in result["faults_each"] if item.get("early"))
    print(f"    found before their window ended (a frozen value's provisional anomaly): {early}")
    for item in sorted(result["faults_each"], key=lambda item: (item["kind"], item["position"])):
        how = ""
        if item["seconds"] is not None:
            how = f" ({item['detector']}{', before its window ended' if item['early'] else ''})"
        print(f"      {item['kind']} at reading {item['position'] + 1} of its window: {_s(item['seconds'])}{how}")
    print(
        f"  alert opened -> mail received: median {_s(mail['median_s'])}, p95 {_s(mail['p95_s'])}, "
        f"max {_s(mail['max_s'])} ({mail['count']} alerts mailed of {result['alerts_opened']} opened "
        f"{result['alerts_by_kind']}; {result['messages']} messages) (target p95 < 120 s)"
    )
    clean = result["clean_windows_flagged"]
    share = "-" if clean["share"] is None else f"{clean['share']:.1%}"
    print(
        f"  live windows flagged on {clean['sensors']} sensors without a fault (or degradation): {clean['flagged']} of "
        f"{clean['windows']} ({share}); shift changes in the period: {result['shift_changes'] or 'none'}"
    )
    print(
        f"  unscored readings after the drain: {result['unscored_readings']} (target 0); duplicate anomalies: "
        f"{result['duplicate_anomalies']}, duplicate mails: {result['duplicate_mails']} (target 0 each)"
    )
    print(
        f"  {result['anomalies']} anomalies, {result['scoring_runs']} scoring runs logged "
        f"({result['scoring_runs_windows']:,} windows), final drain {result['drain']}; tasks {result['tasks']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())

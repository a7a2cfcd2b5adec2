"""Benchmark: scoring throughput, as an operator runs it (issue 12, "Scoring that keeps up").

On the local PostgreSQL (database smartmaint_bench_scoring, recreated, dropped at the end unless --keep) with a
local MLflow store in a temporary directory:

Setup. The default fleet (20 sensors, 20,000 readings) is seeded and its supervised detectors trained (one per
sensor type, promoted), then the fleet is grown to --sensors sensors (1,000: 250 assets on 3 sites, 4 sensors
each) with READINGS_PER_SENSOR readings a minute apart each (35 h) ending at END, and the normal-behaviour models
of every asset are trained (`train_models --detector normal`).

(a) Scheduled: the newest window of every sensor (every watermark 10 minutes before END, scoring up to END plus
    a minute). `manage.py score_readings` as a subprocess, the whole run timed (interpreter, imports, MLflow,
    model loads); and the same run in this process with the models already loaded (``mlops.runs.scoring_run``,
    what the command and the Celery task call). Targets: the command under 10 s; >= 1,000 windows/s loaded.
(b) Backlog: 24 hours of the same fleet (every watermark 24 h before END): 144 windows per sensor, in this
    process with the models loaded, and once as the command. Target: >= 5,000 windows/s.

Reference, measured in the same run for (a) and (b): computing the features alone, ``build_windows`` on the
very series the scoring reads (read beforehand: the read is timed apart). Each repeat starts from the same state
(anomalies, scoring runs and watermarks reset, and vacuumed as autovacuum would: see ``vacuum``; the alerts a
first untimed run opened stay open, as in steady state); medians of --repeats.

    .venv/bin/python bench/scoring.py [--sensors 1000] [--repeats 5] [--keep]

Writes bench/results/scoring.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import production_env  # noqa: E402

DB = "smartmaint_bench_scoring"
END = datetime(2026, 1, 1, tzinfo=UTC)
# 24 h to score in the backlog case, and the look-back before it (61 windows of 10 minutes, and one more).
READINGS_PER_SENSOR = 35 * 60
SCHEDULED = timedelta(minutes=10)
BACKLOG = timedelta(hours=24)


def reset(*, back: timedelta, alerts: bool = False) -> None:
    """Forget every anomaly and scoring run (and alert, with ``alerts``); every sensor's watermark ``back`` before END.

    Alerts stay by default: in steady state the alerts of the fleet's degrading assets are open already, and a run
    refreshes them (about 160 of the 1,000 sensors are on degrading assets, which the normal model flags).
    """
    from mlops.models import Alert, Anomaly, ScoringRun, ScoringWatermark
    from sensors.models import Sensor

    if alerts:
        Alert.objects.all().delete()
    Anomaly.objects.all().delete()
    ScoringRun.objects.all().delete()
    ScoringWatermark.objects.all().delete()
    ScoringWatermark.objects.bulk_create(
        [ScoringWatermark(sensor_id=pk, scored_until=END - back) for pk in Sensor.objects.values_list("pk", flat=True)]
    )
    vacuum()


def vacuum() -> None:
    """VACUUM ANALYZE the tables a run writes and ``reset`` rewrites, as autovacuum keeps them in steady state.

    This machine's PostgreSQL runs with autovacuum off (its conf.d/90-ci.conf); a live database has it on. Without
    this, every repeat left its deleted and updated rows behind (after a few bench runs the statistics counted
    711,893 dead watermark rows beside the 1,000 live ones). No effect on the timings was measured here: the
    tables stayed small (the watermarks' 208 kB) and the machine's own drift between runs was larger.
    """
    from django.db import connection

    if connection.vendor != "postgresql" or connection.in_atomic_block:  # VACUUM cannot run in a transaction
        return
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE mlops_scoringwatermark, mlops_anomaly, mlops_alert, mlops_scoringrun")


def reference_series(*, back: timedelta, window: int) -> list:
    """The series a scheduled run from watermarks ``back`` before END reads, type by type (as it reads them)."""
    from mlops.scoring import lookback_starts
    from mlops.selectors import sensor_series
    from sensors.models import Sensor

    by_type: dict[str, list] = {}
    for sensor in Sensor.objects.order_by("pk"):
        by_type.setdefault(sensor.sensor_type, []).append(sensor)
    read = []
    for group in by_type.values():
        everyone, starts = lookback_starts(
            sensors=group, since={sensor.pk: END - back for sensor in group}, window=window
        )
        read.append(sensor_series(sensors=everyone, start=None, end=END + timedelta(minutes=1), starts=starts))
    return read


def measure(*, back: timedelta, repeats: int, window: int = 10) -> dict:
    """Scoring in this process with the models loaded, against build_windows alone on the same series."""
    from mlops.features import build_windows
    from mlops.runs import scoring_run

    until = END + timedelta(minutes=1)
    reset(back=back, alerts=True)
    scoring_run(end=until, window=window)  # loads the models and opens the alerts (not timed)
    score_s, feature_s, read_s, windows = [], [], [], []
    for _ in range(repeats):
        reset(back=back)
        started = time.perf_counter()
        report = scoring_run(end=until, window=window)
        score_s.append(time.perf_counter() - started)
        windows.append(report.summary()["windows"])
        started = time.perf_counter()
        series = reference_series(back=back, window=window)
        read_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        for group in series:
            build_windows(group, window=window)
        feature_s.append(time.perf_counter() - started)
    assert len(set(windows)) == 1, windows  # every repeat scores the same windows
    result = {
        "windows": windows[0],
        "score_s": score_s,
        "features_s": feature_s,
        "read_s": read_s,
        "score_median_s": statistics.median(score_s),
        "features_median_s": statistics.median(feature_s),
        "read_median_s": statistics.median(read_s),
    }
    result["windows_per_s"] = result["windows"] / result["score_median_s"]
    result["features_windows_per_s"] = result["windows"] / result["features_median_s"]
    result["ratio_to_features"] = result["score_median_s"] / result["features_median_s"]
    return result


def command(env: dict, *, back: timedelta, repeats: int) -> dict:
    """``manage.py score_readings`` as a subprocess, from the same state each time: wall time of the whole run."""
    seconds, windows = [], []
    for _ in range(repeats):
        reset(back=back)
        started = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "score_readings",
                "--to",
                (END + timedelta(minutes=1)).isoformat(),
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        seconds.append(time.perf_counter() - started)
        windows.append(sum(int(n) for n in re.findall(r"(\d+) windows scored", out)))
    assert len(set(windows)) == 1, windows
    median = statistics.median(seconds)
    return {"windows": windows[0], "seconds": seconds, "median_s": median, "windows_per_s": windows[0] / median}


def setup(env: dict, *, sensors: int) -> None:
    manage = [sys.executable, str(ROOT / "manage.py")]
    end = END.isoformat()

    def run(*args: str) -> None:
        subprocess.run([*manage, *args], env=env, check=True, capture_output=True, text=True)

    run("migrate", "-v0")
    run("seed_data", "--end", end, "--quiet")
    run("train_models", "--promote", "--detector", "supervised")
    run(
        "seed_data",
        "--sensors",
        str(sensors),
        "--readings",
        str(sensors * READINGS_PER_SENSOR),
        "--end",
        end,
        "--quiet",
    )
    run("train_models", "--detector", "normal")
    # As autovacuum would have by now on a live database: the planner's statistics of the new readings.
    import psycopg

    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE readings_reading")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="Keep the database (and reuse it if it exists).")
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()

    import psycopg

    # With --keep, the database and its MLflow store (a fixed directory) are reused when both are there.
    var = Path(tempfile.gettempdir()) / f"{DB}-var" if args.keep else Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone() and var.exists()
        if not (args.keep and exists):
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DB}")
    env = production_env(os.environ, f"{args.server}/{DB}", DJANGO_VAR_DIR=str(var))
    if not (args.keep and exists):
        started = time.perf_counter()
        setup(env, sensors=args.sensors)
        print(f"setup (seed, train): {time.perf_counter() - started:.0f} s")
    else:  # a kept database gets the migrations added since it was built
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, check=True)

    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "smartmaint.settings"
    import django

    django.setup()
    result = {"sensors": args.sensors, "repeats": args.repeats}
    result["scheduled"] = measure(back=SCHEDULED, repeats=args.repeats)
    result["scheduled_command"] = command(env, back=SCHEDULED, repeats=args.repeats)
    result["backlog"] = measure(back=BACKLOG, repeats=max(1, args.repeats // 2))
    result["backlog_command"] = command(env, back=BACKLOG, repeats=1)

    cmd, one, backlog = result["scheduled_command"], result["scheduled"], result["backlog"]
    print(f"(a) scheduled, newest window of {args.sensors:,} sensors ({one['windows']:,} windows):")
    print(
        f"    score_readings command, whole run: median {cmd['median_s']:.2f} s (target < 10 s)  {_fmt(cmd['seconds'])}"
    )
    _report(one, target=1000)
    print(f"(b) backlog, 24 h of {args.sensors:,} sensors a minute apart ({backlog['windows']:,} windows):")
    _report(backlog, target=5000)
    print(f"    score_readings command, whole run: {result['backlog_command']['median_s']:.1f} s")

    from django.db import connections

    connections.close_all()
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "scoring.json").write_text(json.dumps(result, indent=2))
    if not args.keep:
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    return 0


def _report(result: dict, *, target: int) -> None:
    print(
        f"    scoring, models loaded: median {result['score_median_s']:.3f} s, "
        f"{result['windows_per_s']:,.0f} windows/s (target >= {target:,})  {_fmt(result['score_s'])}"
    )
    print(
        f"    features alone (build_windows, same series): median {result['features_median_s']:.3f} s, "
        f"{result['features_windows_per_s']:,.0f} windows/s; reading those series: {result['read_median_s']:.3f} s"
    )
    print(f"    ratio scoring / features alone: {result['ratio_to_features']:.1f}")


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


if __name__ == "__main__":
    raise SystemExit(main())

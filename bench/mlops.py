"""Benchmark: training time (default fleet, 1M readings) and scoring latency with a warm model cache.

On the local PostgreSQL (database smartmaint_bench_ml, recreated and dropped)
with a local MLflow store in a temporary directory:

1. `seed_data` (defaults: 20 sensors, 20,000 readings) then `train_models` (all
   types), timed; the per-type precision, recall and F1 are printed.
2. The same with `--readings 1000000`.
3. Scoring one sensor's last hour (`readings_score`) repeatedly with the champion
   cached: median and p95, against the feature computation alone (reference).

    .venv/bin/python bench/mlops.py [--rounds 30]
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
DB = "smartmaint_bench_ml"
END = "2026-01-01T00:00:00Z"


def p95(values):
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    result = {}
    with tempfile.TemporaryDirectory() as var:
        env = {**os.environ, "DJANGO_DEBUG": "true", "DATABASE_URL": f"{args.server}/{DB}", "DJANGO_VAR_DIR": var}
        manage = [sys.executable, str(ROOT / "manage.py")]
        for label, readings in (("default_fleet", "20000"), ("one_million", "1000000")):
            with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {DB}")
            subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
            subprocess.run([*manage, "seed_data", "--readings", readings, "--end", END, "--quiet"], env=env, check=True)
            started = time.perf_counter()
            out = subprocess.run(
                [*manage, "train_models", "--promote"], env=env, check=True, capture_output=True, text=True
            ).stdout
            seconds = time.perf_counter() - started
            result[f"train_{label}_s"] = seconds
            result[f"train_{label}_report"] = out.strip().splitlines()
            print(f"train_models on {label} ({int(readings):,} readings): {seconds:.1f} s")
            for line in out.strip().splitlines():
                print("   ", line)

        # Scoring latency, in this process, on the 1M database with its champions.
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "smartmaint.settings"
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from datetime import timedelta

        from django.db.models import Max

        from mlops.features import build_windows
        from mlops.scoring import lookback_starts
        from mlops.selectors import sensor_series
        from mlops.services import WINDOW, readings_score
        from readings.models import Reading
        from sensors.models import Sensor

        sensor = Sensor.objects.get(sensor_id="sensor-001")
        end = Reading.objects.filter(sensor=sensor).aggregate(last=Max("time"))["last"] + timedelta(seconds=1)
        start = end - timedelta(hours=1)

        def score():
            readings_score(sensors=[sensor], start=start, end=end)

        def features_only():
            everyone, starts = lookback_starts(sensors=[sensor], since={sensor.pk: start}, window=WINDOW)
            build_windows(sensor_series(sensors=everyone, start=None, end=end, starts=starts), window=WINDOW)

        score()  # loads and caches the champion
        samples = {"features_only": [], "score": []}
        for _ in range(args.rounds):
            for name, fn in (("features_only", features_only), ("score", score)):
                t0 = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - t0) * 1000)
        for name, values in samples.items():
            result[f"{name}_median_ms"] = statistics.median(values)
            result[f"{name}_p95_ms"] = p95(values)
        ratio = result["score_median_ms"] / result["features_only_median_ms"]
        result["score_to_features_ratio"] = ratio
        print(
            f"score one sensor's last hour (warm model cache): median {result['score_median_ms']:.1f} ms, "
            f"p95 {result['score_p95_ms']:.1f} ms; feature computation alone: median "
            f"{result['features_only_median_ms']:.1f} ms (ratio {ratio:.2f})"
        )
        from django.db import connections

        connections.close_all()
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "mlops.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

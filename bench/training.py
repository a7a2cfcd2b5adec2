"""Benchmark: `manage.py train_models` on 1,000,000 readings (issue 12: under 60 s; 340 s for 864,000 in the issue).

On the local PostgreSQL (database smartmaint_bench_training, recreated and dropped) with a local MLflow store in a
temporary directory: `seed_data --readings 1000000` (the default 20 sensors on 5 assets, 50,000 readings a minute
apart each, about 35 days), then `train_models --promote` as a subprocess, the whole run timed (start-up, reading,
features, the supervised detectors of the 8 sensor types with their out-of-fold evaluation, the per-asset normal
models, MLflow logging and registering), --repeats times (each registers new versions); then each detector alone
once (`--detector supervised`, `--detector normal`).

Reference, measured in the same run: the features alone (`sensor_series` and `build_windows` on every sensor's
readings, in this process), median of --repeats.

    .venv/bin/python bench/training.py [--readings 1000000] [--repeats 3]

Writes bench/results/training.json.
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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import production_env  # noqa: E402

DB = "smartmaint_bench_training"
END = "2026-01-01T00:00:00Z"


def train(env: dict, *args: str) -> tuple[float, list[str]]:
    """``manage.py train_models --promote *args``: wall time of the whole run, and the lines it printed."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "train_models", "--promote", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return time.perf_counter() - started, [line for line in out.splitlines() if line.strip()]


def features_alone(*, repeats: int, window: int = 10) -> dict:
    """Every sensor's readings read and their windows built, as training does, in this process."""
    from mlops.features import build_windows
    from mlops.selectors import sensor_series
    from sensors.models import Sensor

    read_s, feature_s, windows = [], [], 0
    for _ in range(repeats):
        sensors = list(Sensor.objects.order_by("pk"))
        started = time.perf_counter()
        series = sensor_series(sensors=sensors, start=None, end=None)
        read_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        windows = len(build_windows(series, window=window))
        feature_s.append(time.perf_counter() - started)
    return {
        "windows": windows,
        "read_s": read_s,
        "features_s": feature_s,
        "read_median_s": statistics.median(read_s),
        "features_median_s": statistics.median(feature_s),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()

    import psycopg

    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    url = f"{args.server}/{DB}"
    env = production_env(os.environ, url, DJANGO_VAR_DIR=tempfile.mkdtemp(prefix="bench-training-"))
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    subprocess.run(
        [*manage, "seed_data", "--readings", str(args.readings), "--end", END, "--quiet"], env=env, check=True
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE readings_reading")  # as autovacuum would have by now

    result = {"readings": args.readings, "repeats": args.repeats, "train_s": []}
    for _ in range(args.repeats):
        seconds, lines = train(env)
        result["train_s"].append(seconds)
        result["report"] = lines
    result["train_median_s"] = statistics.median(result["train_s"])
    result["supervised_s"], _ = train(env, "--detector", "supervised")
    result["normal_s"], _ = train(env, "--detector", "normal")

    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "smartmaint.settings"
    import django

    django.setup()
    result["features"] = features_alone(repeats=args.repeats)
    reference = result["features"]["read_median_s"] + result["features"]["features_median_s"]
    result["ratio_to_features"] = result["train_median_s"] / reference

    print(f"train_models --promote on {args.readings:,} readings ({result['features']['windows']:,} windows):")
    print(f"    whole run: median {result['train_median_s']:.1f} s (target < 60 s)  {_fmt(result['train_s'])}")
    print(
        f"    supervised detectors alone: {result['supervised_s']:.1f} s; "
        f"normal models alone: {result['normal_s']:.1f} s"
    )
    print(
        f"    features alone: reading {result['features']['read_median_s']:.2f} s + build_windows "
        f"{result['features']['features_median_s']:.2f} s; ratio whole run / features alone: "
        f"{result['ratio_to_features']:.0f}"
    )
    for line in result["report"]:
        print("   ", line)

    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "training.json").write_text(json.dumps(result, indent=2))
    return 0


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in values) + "]"


if __name__ == "__main__":
    raise SystemExit(main())

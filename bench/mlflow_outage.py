"""Benchmark: the score API while MLflow hangs (SIGSTOP), against the same requests with MLflow healthy.

The app runs under gunicorn with the web image's config (docker/gunicorn.conf.py: gthread, one process here so
that every request shares one champion cache) and the default MLflow settings (MLFLOW_REQUEST_TIMEOUT 3 s, no
retry, MLFLOW_RETRY_AFTER 10 s), except MLFLOW_ALIAS_TTL=2 so that aliases are re-checked during the run. A
throwaway `mlflow server` (SQLite store in a temporary directory) holds one champion per sensor type.

1. healthy: sequential score requests over the types (champions in memory): the reference median.
2. frozen, champions in memory: the same requests while MLflow is stopped with SIGSTOP, after the aliases went
   stale; the models in memory keep scoring (200).
3. frozen, nothing in memory (a new gunicorn): one request per type at once, and /healthz meanwhile; each answers
   a 503 after one request timeout, not one after the other (the issue saw 20, 40, 60, 80 s and /healthz 18 s).
4. frozen, nothing in memory, after that: later requests answer 503 at once until MLFLOW_RETRY_AFTER.

Before this change a request waited 10 s x 2 attempts (about 22 s) on a frozen MLflow, behind one global lock.

    .venv/bin/python bench/mlflow_outage.py [--rounds 20]

Uses a fresh database `smartmaint_bench_mlflow` (dropped at the end) on BENCH_SERVER (default
postgresql://postgres@127.0.0.1:5432) and Redis database 12 on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
from common import free_port, production_env

ROOT = Path(__file__).resolve().parent.parent
DB = "smartmaint_bench_mlflow"
REDIS_URL = "redis://127.0.0.1:6379/12"
ALIAS_TTL = 2


def wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback only)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


class App:
    """gunicorn with the image's config on a free port."""

    def __init__(self, env: dict):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(ROOT / "docker" / "gunicorn.conf.py"),
                f"--bind=127.0.0.1:{self.port}",
                "--access-logfile=/dev/null",
                "smartmaint.wsgi:application",
            ],
            cwd=ROOT,
            env={**env, "GUNICORN_WORKERS": "1"},
            # Each 503 is logged with its cause (MLflow's address and error): kept out of the figures.
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(f"http://127.0.0.1:{self.port}/healthz")

    def request(self, method: str, path: str, key: str = "", body: bytes = b"") -> tuple[int, float, dict]:
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Content-Type": "application/json", "Host": "127.0.0.1"}
        if key:
            headers["Authorization"] = f"Api-Key {key}"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        took = time.perf_counter() - started
        conn.close()
        return response.status, took, dict(response.getheaders())

    def score(self, sensor_id: str, key: str) -> tuple[int, float]:
        status, took, _ = self.request("POST", f"/api/v1/sensors/{sensor_id}/score", key, b'{"minutes": 60}')
        return status, took

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def summary(label: str, samples: list[tuple[int, float]]) -> dict:
    times = [took * 1000 for _, took in samples]
    statuses = sorted({status for status, _ in samples})
    result = {"median_ms": statistics.median(times), "max_ms": max(times), "statuses": statuses, "n": len(times)}
    print(f"{label}: median {result['median_ms']:.0f} ms, max {result['max_ms']:.0f} ms, statuses {statuses}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="Requests per measured phase. Default 20.")
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    result = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        mlflow_port = free_port()
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        env = production_env(
            os.environ,
            f"{args.server}/{DB}",
            REDIS_URL=REDIS_URL,
            DJANGO_VAR_DIR=str(work / "var"),
            MLFLOW_TRACKING_URI=mlflow_url,
            MLFLOW_ALIAS_TTL=str(ALIAS_TTL),
        )
        for name in ("MLFLOW_REQUEST_TIMEOUT", "MLFLOW_REQUEST_MAX_RETRIES", "MLFLOW_RETRY_AFTER"):
            env.pop(name, None)  # the defaults are what is measured
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DB}")
        mlflow = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{work / 'mlflow.db'}",
                "--default-artifact-root",
                str(work / "artifacts"),
                "--no-serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            cwd=work,
            start_new_session=True,  # SIGSTOP must reach its uvicorn worker too
        )
        app = None
        try:
            wait_http(f"{mlflow_url}/health")
            manage = [sys.executable, str(ROOT / "manage.py")]
            dev_env = {**env, "DJANGO_DEBUG": "true"}
            subprocess.run([*manage, "migrate", "-v0"], env=dev_env, check=True)
            subprocess.run([*manage, "seed_data", "--sensors", "8", "--readings", "8000", "--quiet"], env=dev_env)
            subprocess.run([*manage, "train_models", "--promote"], env=dev_env, check=True, capture_output=True)
            script = (
                "from sensors.models import APIKey, Sensor\n"
                "key, raw = APIKey.objects.create_key(name='bench', scope='read_ingest')\n"
                "by_type = {}\n"
                "for s in Sensor.objects.order_by('sensor_id'): by_type.setdefault(s.sensor_type, s.sensor_id)\n"
                "print(raw); print(','.join(list(by_type.values())[:4]))\n"
            )
            out = subprocess.run(
                [*manage, "shell", "-c", script], env=dev_env, check=True, capture_output=True, text=True
            ).stdout.split()
            key, sensors = out[-2], out[-1].split(",")
            print(f"{len(sensors)} sensor types scored: {', '.join(sensors)}")

            subprocess.run([*manage, "collectstatic", "--no-input", "-v0"], env=env, check=True)
            app = App(env)
            for sensor in sensors:  # load every champion once
                status, _ = app.score(sensor, key)
                assert status == 200, status
            healthy = [app.score(sensors[i % len(sensors)], key) for i in range(args.rounds)]
            result["healthy"] = summary("healthy MLflow, champions in memory (reference)", healthy)

            os.killpg(mlflow.pid, signal.SIGSTOP)
            time.sleep(ALIAS_TTL + 0.5)  # every alias is due for a check
            frozen = [app.score(sensors[i % len(sensors)], key) for i in range(args.rounds)]
            result["frozen_cached"] = summary("frozen MLflow, champions in memory", frozen)

            app.stop()
            app = App(env)  # nothing in memory
            outcomes: list[tuple[int, float]] = []
            threads = [
                threading.Thread(target=lambda s=sensor: outcomes.append(app.score(s, key))) for sensor in sensors
            ]
            for thread in threads:
                thread.start()
            time.sleep(0.2)
            health = app.request("GET", "/healthz")
            for thread in threads:
                thread.join()
            result["frozen_concurrent_types"] = summary(
                f"frozen MLflow, nothing in memory, {len(sensors)} types at once", outcomes
            )
            result["healthz_during_ms"] = health[1] * 1000
            print(f"/healthz meanwhile: {health[0]} in {health[1] * 1000:.0f} ms")
            later = [app.score(sensors[i % len(sensors)], key) for i in range(args.rounds)]
            result["frozen_fail_fast"] = summary("frozen MLflow, nothing in memory, afterwards", later)
            retry_after = app.request("POST", f"/api/v1/sensors/{sensors[0]}/score", key, b'{"minutes": 60}')[2]
            result["retry_after"] = retry_after.get("Retry-After")

            reference = result["healthy"]["median_ms"]
            for name in ("frozen_cached", "frozen_concurrent_types", "frozen_fail_fast"):
                ratio = result[name]["median_ms"] / reference
                result[name]["ratio_to_healthy"] = ratio
                print(f"ratio {name} / healthy (medians): {ratio:.2f}")
        finally:
            with_suppressed = [lambda: os.killpg(mlflow.pid, signal.SIGCONT), lambda: os.killpg(mlflow.pid, 9)]
            if app is not None:
                with_suppressed.insert(0, app.stop)
            for step in with_suppressed:
                with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                    step()
            mlflow.wait(timeout=30)
            with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "mlflow_outage.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

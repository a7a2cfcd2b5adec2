"""Benchmark: /healthz latency while slow clients hold CSV exports open, under the web image's gunicorn config.

gunicorn runs with docker/gunicorn.conf.py (its defaults, as in the image) on PostgreSQL. First /healthz
is probed with no other traffic (the reference), then --readers clients start CSV exports of a long range
and read them slowly (a few KB/s, so every export stays open for the whole measurement), and /healthz is
probed again. Each probe is a new connection, as an orchestrator's would be. Target: every probe answers
within 1 s while the readers are connected. Prints medians, p95 and the ratio loaded / reference.

    .venv/bin/python bench/slow_readers.py [--readers 10] [--probes 50] [--worker-class sync]

`--worker-class sync` (with GUNICORN_THREADS=1) shows the old behaviour: probes time out.

Uses a fresh database `smartmaint_bench_slow` (dropped at the end) on BENCH_SERVER (default
postgresql://postgres@127.0.0.1:5432) and Redis database 12 on 127.0.0.1:6379 (flushed).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import redis
from common import manage, percentile, production_env, start_image_gunicorn

ROOT = Path(__file__).resolve().parent.parent
DB = "smartmaint_bench_slow"
REDIS_URL = "redis://127.0.0.1:6379/12"
SENSOR = "sensor-001"
# Seconds a probe may take before it counts as unanswered (the orchestrator's view: the target is 1 s).
PROBE_TIMEOUT = 10.0


class SlowReader(threading.Thread):
    """Starts a CSV export and reads it a little at a time until stopped; records whether it stayed open."""

    def __init__(self, port: int, path: str, key: str, rate: int):
        super().__init__(daemon=True)
        self.port, self.path, self.key, self.rate = port, path, key, rate
        self.started = threading.Event()
        self.stop = threading.Event()
        self.status = None
        self.received = 0
        self.ended_early = False
        self.refused = 0

    def run(self):
        # An export refused for want of a free slot in the worker that took the connection (503) is retried,
        # as a client honouring Retry-After would, only sooner.
        for _ in range(40):
            sock = self.connect()
            if self.status != 503:
                break
            self.refused += 1
            sock.close()
            time.sleep(0.5)
        self.started.set()
        chunk = max(1, self.rate // 10)
        while not self.stop.is_set():
            data = sock.recv(chunk)
            if not data:
                self.ended_early = True
                break
            self.received += len(data)
            time.sleep(0.1)
        sock.close()

    def connect(self) -> socket.socket:
        sock = socket.socket()
        # A small receive window: the server cannot push the export into kernel buffers and be done.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(60)
        sock.connect(("127.0.0.1", self.port))
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Api-Key {self.key}\r\n"
            "Accept: text/csv\r\n\r\n"
        )
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(1024)
            if not data:
                break
            head += data
        self.status = int(head.split(b" ", 2)[1]) if head else None
        return sock


def probe(port: int) -> float | None:
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT)
        conn.request("GET", "/healthz", headers={"Host": "localhost"})
        response = conn.getresponse()
        response.read()
        conn.close()
    except OSError:
        return None
    return (time.perf_counter() - started) if response.status == 200 else None


def probes(port: int, count: int) -> tuple[list[float], int]:
    answered, failed = [], 0
    for _ in range(count):
        seconds = probe(port)
        if seconds is None:
            failed += 1
        else:
            answered.append(seconds * 1000)
        time.sleep(0.05)
    return answered, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--readings", type=int, default=200_000, help="rows of the exported range (~50 bytes each)")
    parser.add_argument("--rate", type=int, default=8192, help="bytes per second each slow reader takes")
    parser.add_argument("--worker-class", help="override the config's worker class (e.g. sync, to compare)")
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()

    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    url = f"{args.server}/{DB}"
    redis.Redis.from_url(REDIS_URL).flushdb()
    # The image's gunicorn settings come from its config file with its defaults: none are set here.
    base = {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN_")}
    env = production_env(base, url, REDIS_URL=REDIS_URL, DJANGO_ALLOWED_HOSTS="localhost,127.0.0.1")
    if args.worker_class == "sync":
        env["GUNICORN_THREADS"] = "1"
    result = {"readers": args.readers, "probes": args.probes, "worker_class": args.worker_class or "config"}
    proc = None
    try:
        manage(env, "migrate", "-v0")
        manage(env, "collectstatic", "--no-input", "-v0")
        manage(env, "seed_data", "--sensors", "1", "--readings", str(args.readings), "--interval", "60", "--quiet")
        key = manage(
            env,
            "shell",
            "-v0",
            "-c",
            "from sensors.models import APIKey; print(APIKey.objects.create_key(name='bench', scope='read')[1])",
            capture=True,
        ).strip()
        proc, port = start_image_gunicorn(env, *([f"--worker-class={args.worker_class}"] if args.worker_class else []))

        probes(port, 5)  # warm-up: imports, first database connections
        reference, reference_failed = probes(port, args.probes)

        path = f"/api/v1/sensors/{SENSOR}/readings?format=csv&from=2000-01-01T00:00:00Z"
        readers = [SlowReader(port, path, key, args.rate) for _ in range(args.readers)]
        for reader in readers:
            reader.start()
        # Wait for the exports to start, but not forever: with sync workers most of them queue.
        deadline = time.monotonic() + PROBE_TIMEOUT * 2
        for reader in readers:
            reader.started.wait(max(0.0, deadline - time.monotonic()))
        statuses = [reader.status for reader in readers]
        refused = sum(reader.refused for reader in readers)
        loaded, loaded_failed = probes(port, args.probes)
        still_open = sum(1 for reader in readers if reader.is_alive() and not reader.ended_early)
        for reader in readers:
            reader.stop.set()
        for reader in readers:
            reader.join(PROBE_TIMEOUT)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")

    def summary(values, failed):
        if not values:
            return {"answered": 0, "unanswered": failed}
        return {
            "answered": len(values),
            "unanswered": failed,
            "median_ms": statistics.median(values),
            "p95_ms": percentile(values, 95),
            "max_ms": max(values),
        }

    result["reader_statuses"] = statuses
    result["refused_503_then_retried"] = refused
    result["readers_open_after_probes"] = still_open
    result["reference"] = summary(reference, reference_failed)
    result["with_readers"] = summary(loaded, loaded_failed)
    print(
        f"slow CSV readers: {args.readers} (HTTP {sorted(set(statuses), key=str)}), still open after probing: "
        f"{still_open}; exports refused (503) and retried before that: {refused}"
    )
    for label, data in (("no readers (reference)", result["reference"]), ("with slow readers", result["with_readers"])):
        if data["answered"]:
            print(
                f"/healthz {label}: median {data['median_ms']:.1f} ms, p95 {data['p95_ms']:.1f} ms, "
                f"max {data['max_ms']:.1f} ms, unanswered within {PROBE_TIMEOUT:.0f} s: {data['unanswered']}"
            )
        else:
            print(f"/healthz {label}: no probe answered within {PROBE_TIMEOUT:.0f} s ({data['unanswered']} tried)")
    if result["reference"]["answered"] and result["with_readers"]["answered"]:
        result["median_ratio"] = result["with_readers"]["median_ms"] / result["reference"]["median_ms"]
        result["p95_ratio"] = result["with_readers"]["p95_ms"] / result["reference"]["p95_ms"]
        print(f"ratio with readers / reference: median {result['median_ratio']:.2f}, p95 {result['p95_ratio']:.2f}")
    met = (
        result["with_readers"]["answered"] == args.probes
        and result["with_readers"]["max_ms"] < 1000
        and still_open == args.readers
    )
    result["target_met"] = met
    print(f"target (every probe within 1 s while {args.readers} readers stay connected): {'met' if met else 'MISSED'}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "slow_readers.json").write_text(json.dumps(result, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())

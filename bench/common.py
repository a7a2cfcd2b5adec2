"""Shared pieces of the benchmarks: manage.py, and gunicorn serving the app on a free loopback port (plain, or with
the web image's config)."""

from __future__ import annotations

import http.client
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def production_env(base: dict, database_url: str, **extra: str) -> dict:
    """The app in production mode on ``database_url``, without HTTPS redirects or throttling in the way."""
    return {
        **base,
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-" + "x" * 60,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "API_THROTTLE_KEY_RATE": "1000000/min",
        "API_THROTTLE_USER_RATE": "1000000/min",
        "LOG_LEVEL": "WARNING",
        # Static files collected like in the image (production serves hashed names).
        "DJANGO_STATIC_ROOT": tempfile.mkdtemp(prefix="smartmaint-static-"),
        **extra,
    }


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method); a single value is its own percentile."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def summary(values: list[float]) -> dict:
    """Timings in milliseconds: median, p95, min and max, to 0.1 ms."""
    return {
        "median_ms": round(statistics.median(values), 1),
        "p95_ms": round(percentile(values, 95), 1),
        "min_ms": round(min(values), 1),
        "max_ms": round(max(values), 1),
    }


class Gunicorn:
    """gunicorn serving smartmaint.wsgi, started and waited for; stop() ends it."""

    def __init__(self, env: dict, workers: int):
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "collectstatic", "--no-input", "-v0"], env=env, check=True
        )
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "smartmaint.wsgi:application",
                f"--workers={workers}",
                f"--bind=127.0.0.1:{self.port}",
                "--log-level=warning",
            ],
            cwd=ROOT,
            env=env,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("gunicorn did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def manage(env: dict, *args: str, capture: bool = False) -> str:
    """``manage.py *args`` in ``env``; its output when ``capture`` (it fails the benchmark on a non-zero exit)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True, capture_output=capture, text=True
    )
    return result.stdout


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until /healthz answers 200 on ``port``; ends ``proc`` and the benchmark if it does not within ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("gunicorn did not start")


def start_image_gunicorn(env: dict, *extra_args: str, stdout=None, stderr=None) -> tuple[subprocess.Popen, int]:
    """gunicorn as the web image runs it (docker/gunicorn.conf.py) on a free port, once /healthz answers.

    ``extra_args`` go after the config (command-line options win over it, e.g. ``--worker-class=sync``).
    """
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(ROOT / "docker" / "gunicorn.conf.py"),
            "smartmaint.wsgi:application",
            f"--bind=127.0.0.1:{port}",
            "--log-level=warning",
            "--access-logfile=/dev/null",
            *extra_args,
        ],
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=stderr,
    )
    wait_healthy(port, proc)
    return proc, port


class AdminClient:
    """One HTTP client with a cookie jar for the admin console under a bench's server: logs in through the admin's
    own form (as a person does, CSRF token and session cookie), then GETs pages."""

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

    def log_in(self, username: str, password: str) -> None:
        _, page, _ = self.request("GET", "/admin/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        form = urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"})
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

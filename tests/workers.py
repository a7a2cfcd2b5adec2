"""Real Celery worker processes for the task tests: ``celery -A smartmaint worker`` on the suite's broker (Redis)
and test database, started and stopped by a test. Nothing of Celery is mocked or run eagerly."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from smartmaint.celery import app
from tests.conftest import ROOT, server_url

QUEUES = ("default", "ingest", "scoring", "mail", "training")
# Generous, and from the environment: a worker loads Django and the ML libraries, slow on a loaded machine.
WORKER_START_TIMEOUT = float(os.environ.get("WORKER_START_TIMEOUT", "180"))
TASK_TIMEOUT = float(os.environ.get("TASK_TIMEOUT", "300"))
_processes: dict[str, subprocess.Popen] = {}  # node name: the worker's main process, while its context is open


def worker_env(**extra: str) -> dict[str, str]:
    """This process's environment pointed at the test database and the suite's broker, plus ``extra``."""
    leaked = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")  # exported by the mlflow library into this process
    env = {key: value for key, value in os.environ.items() if key not in leaked}
    env.update(
        {
            "DJANGO_DEBUG": "true",
            "PYTHONDONTWRITEBYTECODE": "1",
            "DATABASE_URL": server_url(settings.DATABASES["default"]["NAME"]),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        }
    )
    return env | extra


def purge_queues() -> None:
    """Empty the suite's queues, so that no task left by an earlier test (or run) reaches these workers."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in QUEUES:
            channel.queue_purge(queue)
        # Tasks taken by workers that died without acknowledging them (Redis keeps them aside, to hand out again
        # after the visibility timeout): dropped too.
        if hasattr(channel, "unacked_key"):
            channel.client.delete(channel.unacked_key, channel.unacked_index_key)


@contextmanager
def celery_worker(queues: str, *, env: dict[str, str], log_dir: Path, concurrency: int = 1):
    """A worker process serving ``queues``; yields its node name once it answers a ping."""
    name = f"{queues.replace(',', '-')}-{uuid.uuid4().hex[:8]}@smartmaint-test"
    log = log_dir / f"{name}.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "smartmaint",
        "worker",
        "--queues",
        queues,
        "--hostname",
        name,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while not app.control.ping(destination=[name], timeout=1.0):
            assert process.poll() is None, f"worker exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"worker not ready in {WORKER_START_TIMEOUT} s: {log.read_text()}"
        _processes[name] = process
        yield name
    finally:
        _processes.pop(name, None)
        process.send_signal(signal.SIGTERM)  # warm shutdown: the running task finishes
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def worker_kill(name: str) -> None:
    """SIGKILL the worker ``name`` whole (its main process and its pool, as when its machine is lost): no warm
    shutdown, no task acknowledged or put back by it."""
    process = _processes[name]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def worker_log(log_dir: Path, name: str) -> str:
    return (log_dir / f"{name}.log").read_text()


def beat_sends_due_jobs(log_dir: Path, *, env: dict[str, str]) -> str:
    """Run a real beat until it sends the periodic jobs (made due by dating their last run an hour back; a job that
    never ran waits one period), then stop it, which records their last runs; returns its log."""
    from datetime import timedelta

    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(enabled=True).update(last_run_at=timezone.now() - timedelta(hours=1))
    log = log_dir / "beat.log"
    with log.open("w") as output:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "smartmaint", "beat", "--loglevel", "INFO", "--pidfile="],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while "Sending due task" not in log.read_text():
            assert beat.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
    finally:
        beat.send_signal(signal.SIGTERM)  # beat records the jobs' last runs as it stops
        with contextlib.suppress(subprocess.TimeoutExpired):
            beat.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(beat.pid, signal.SIGKILL)
        beat.wait()
    return log.read_text()


def sent_jobs(beat_log: str) -> list[str]:
    """The periodic jobs (their names) a beat's log says it sent."""
    return sorted(set(re.findall(r"Sending due task (.+?) \(", beat_log)))


def jobs_finish(names: list[str], *, timeout: float = TASK_TIMEOUT) -> None:
    """Wait until each periodic job of ``names`` has a finished run (a task result, success or failure)."""
    from django_celery_results.models import TaskResult

    deadline = time.monotonic() + timeout
    while True:
        done = set(
            TaskResult.objects.filter(periodic_task_name__in=names, status__in=["SUCCESS", "FAILURE"]).values_list(
                "periodic_task_name", flat=True
            )
        )
        if done >= set(names):
            return
        assert time.monotonic() < deadline, f"no run finished within {timeout:g} s: {sorted(set(names) - done)}"
        time.sleep(0.5)

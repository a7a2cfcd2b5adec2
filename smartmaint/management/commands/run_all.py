"""``manage.py run_all``: the web server, a Celery worker and beat as one, for the quick start (``make run``)."""

import contextlib
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

QUEUES = "default,ingest,scoring,mail,training"


class Command(BaseCommand):
    help = (
        "Run the development web server (runserver), a Celery worker serving every queue and Celery beat together, "
        "on the settings as they are (the quick start: SQLite and the filesystem broker under DJANGO_VAR_DIR). "
        "Ctrl-C or SIGTERM stops all three; any one of them stopping stops the others. Deployments run "
        "gunicorn, workers and beat as their own processes instead (docs/deploy.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000", help="runserver's address and port.")
        parser.add_argument(
            "--concurrency",
            type=int,
            default=2,
            help="Worker processes (default 2: a retraining takes one, scoring and mail go on in the other).",
        )
        parser.add_argument("--queues", default=QUEUES, help=f"Queues the worker serves (default {QUEUES}).")
        parser.add_argument(
            "--stop-timeout",
            type=float,
            default=30.0,
            help="Seconds each process gets to finish (the worker its running tasks) before it is killed.",
        )

    def handle(self, *args, **options):
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1.")
        python, manage = sys.executable, str(settings.BASE_DIR / "manage.py")
        celery = [python, "-m", "celery", "-A", "smartmaint"]
        commands = {
            "web": [python, manage, "runserver", options["addrport"]],
            "worker": [
                *celery,
                "worker",
                "--queues",
                options["queues"],
                "--concurrency",
                str(options["concurrency"]),
                "--loglevel",
                "INFO",
            ],
            # No pidfile: a stale one left by a killed run would stop the next `make run`.
            "beat": [*celery, "beat", "--loglevel", "INFO", "--pidfile="],
        }
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        # Each in a session of its own, so that stopping one stops what it started (runserver's reloader child,
        # the worker's pool) and Ctrl-C reaches this process only, which stops them in order.
        processes = {}
        try:
            for name, command in commands.items():
                # The commands are this interpreter and fixed arguments, plus options of the operator's own.
                processes[name] = subprocess.Popen(command, cwd=settings.BASE_DIR, start_new_session=True)  # noqa: S603
            self.stdout.write(
                f"Started web (pid {processes['web'].pid}), worker (pid {processes['worker'].pid}, queues "
                f"{options['queues']}) and beat (pid {processes['beat'].pid}). Ctrl-C stops all three."
            )
            ended = None
            while not stopping and ended is None:
                ended = next((name for name, process in processes.items() if process.poll() is not None), None)
                time.sleep(0.2)
            if ended is not None:
                self.stderr.write(f"{ended} stopped (exit status {processes[ended].returncode}): stopping the others.")
        finally:
            _stop_all(processes, timeout=options["stop_timeout"])
        if ended is not None and processes[ended].returncode:
            raise CommandError(f"{ended} failed; see its output above.")


def _stop_all(processes: dict[str, subprocess.Popen], *, timeout: float) -> None:
    """SIGTERM to each process, SIGKILL to what is left of its group after ``timeout``.

    The worker's main process only: its warm shutdown lets the pool finish the running tasks (a SIGTERM to the
    whole group would end them halfway).
    """
    for process in processes.values():
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        # Whatever is left of its group (a reloader child, a pool process) goes too.
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)

"""The quick start as a newcomer meets it: after `make run`, every manage.py command the README shows runs as
written (no DJANGO_DEBUG in the environment), and the file that makes it so is never read by a deployment."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.services import free_port
from tests.test_docker_files import dockerignore_excludes

README = (ROOT / "README.md").read_text()
RUNNABLE = re.compile(r"`(\.venv/bin/python manage\.py [^`]+)`")


def newcomer_env(var_dir) -> dict[str, str]:
    """A shell with none of the app's variables: only where the quick start keeps its state (the suite's own
    directory instead of var/, which belongs to the developer's quick start)."""
    documented = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in documented
        and not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "MLFLOW_", "GUNICORN_"))
        # The suite runs under `make test`: its make flags must not reach the quick start's make.
        and key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    }
    return {**base, "PYTHONDONTWRITEBYTECODE": "1", "DJANGO_VAR_DIR": str(var_dir)}


def test_readme_writes_every_manage_py_command_runnably():
    bare = re.findall(r"(?<!\.venv/bin/python )manage\.py ([a-z_]+)", README)
    assert not bare, f"README commands that do not run as written (use .venv/bin/python manage.py ...): {bare}"
    commands = {shlex.split(command)[2] for command in RUNNABLE.findall(README)}
    assert {"seed_data", "train_models", "score_readings", "check_alerts", "doctor"} <= commands


@pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")
def test_after_make_run_every_readme_command_runs_as_written(tmp_path):
    env = newcomer_env(tmp_path)
    # `make run` without its last step (runserver); its virtualenv is this one, taken as up to date.
    prepared = subprocess.run(
        ["make", "-o", ".venv/.runtime", "quickstart", f"BIN={os.path.dirname(sys.executable)}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    assert "DJANGO_DEBUG=true" in (tmp_path / "quickstart.env").read_text()

    commands = RUNNABLE.findall(README)
    assert commands
    for command in commands:
        words = shlex.split(command)
        result = subprocess.run(
            [sys.executable, *words[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        output = result.stdout + result.stderr
        assert "Configuration error" not in output, f"{command}: {output}"
        assert "Traceback" not in output, f"{command}: {output}"
        if words[2] == "doctor":
            # Its status reports the dependencies' health; it must have run its checks.
            assert re.search(r"\d+ OK, \d+ FAIL, \d+ SKIP", output), f"{command}: {output}"
        else:
            assert result.returncode == 0, f"{command}: {output}"


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_quickstart_env_is_ignored_when_a_database_url_is_set(tmp_path):
    (tmp_path / "quickstart.env").write_text("DJANGO_DEBUG=true\n")
    quick = manage("check", env=newcomer_env(tmp_path))
    assert quick.returncode == 0, quick.stderr

    deployed = manage(
        "check", env={**newcomer_env(tmp_path), "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/smartmaint"}
    )
    assert deployed.returncode != 0
    assert "DJANGO_SECRET_KEY" in deployed.stderr


def test_production_message_says_how_to_run_locally(tmp_path):
    result = manage("check", env=newcomer_env(tmp_path))
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "DJANGO_DEBUG=true" in line and "make run" in line


def test_quickstart_env_stays_out_of_images_and_compose():
    assert dockerignore_excludes(ROOT, "var/quickstart.env")
    assert "quickstart" not in (ROOT / "docker-compose.yml").read_text()


# Generous: on a loaded machine the quick start's migrate and seed take minutes, not seconds.
MAKE_RUN_TIMEOUT = float(os.environ.get("QUICKSTART_TIMEOUT", "600"))
STARTED = re.compile(r"Started web \(pid (\d+)\), worker \(pid (\d+), .*\) and beat \(pid (\d+)\)")


def _sessions_alive(sessions: set[int]) -> list[str]:
    """Processes still running in any of ``sessions`` (each process run_all starts leads a session of its own)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()  # after "pid (comm)": state ppid pgrp session ...
        if fields[0] != "Z" and int(fields[3]) in sessions:
            alive.append(text[:80])
    return alive


def _task_results(database: Path) -> list[tuple[str, str, str]]:
    if not database.exists():
        return []
    try:
        with sqlite3.connect(database, timeout=5) as connection:
            return connection.execute(
                "SELECT task_name, status, periodic_task_name FROM django_celery_results_taskresult"
            ).fetchall()
    except sqlite3.OperationalError:  # not migrated yet, or busy
        return []


@pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find leftover processes")
def test_make_run_starts_web_worker_and_beat_on_the_embedded_defaults_and_ctrl_c_stops_them_all(tmp_path):
    # The rule alerts every 2 s instead of every minute (the schedule migrate installs), so beat shows soon.
    env = {**newcomer_env(tmp_path), "JOBS_ALERT_RULES_SECONDS": "2"}
    port = free_port()
    log = tmp_path / "make-run.log"
    with log.open("w") as output:
        make = subprocess.Popen(
            [
                "make",
                "-o",
                ".venv/.runtime",
                "run",
                f"BIN={os.path.dirname(sys.executable)}",
                f"RUN_ADDRESS=127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the test's Ctrl-C reaches make and run_all only
        )
    sessions = {make.pid}
    try:
        deadline = time.monotonic() + MAKE_RUN_TIMEOUT
        healthy = beaten = False
        while time.monotonic() < deadline and not (healthy and beaten):
            assert make.poll() is None, log.read_text()
            if started := STARTED.search(log.read_text()):
                sessions |= {int(pid) for pid in started.groups()}
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    healthy = response.status == 200
            except OSError:
                pass
            # Beat sent the job, the worker ran it, and its result is in the quick start's SQLite database.
            beaten = ("mlops.alerts_check_rules", "SUCCESS", "Alert rules") in _task_results(
                tmp_path / "smartmaint.sqlite3"
            )
            time.sleep(1)
        assert healthy and beaten, log.read_text()
        assert len(sessions) == 4, log.read_text()
        # The worker answers a broadcast over the filesystem broker (what manage.py doctor asks).
        ping = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "smartmaint", "inspect", "ping", "--timeout", "10"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "pong" in ping.stdout, ping.stdout + ping.stderr
    finally:
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in the terminal
        make.wait(timeout=120)
    deadline = time.monotonic() + 60
    while _sessions_alive(sessions) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _sessions_alive(sessions) == [], log.read_text()
    assert "Warm shutdown" in log.read_text()

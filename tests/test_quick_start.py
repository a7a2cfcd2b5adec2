"""The quick start as a newcomer meets it: after `make run`, every manage.py command the README shows runs as
written (no DJANGO_DEBUG in the environment), and the file that makes it so is never read by a deployment."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT
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

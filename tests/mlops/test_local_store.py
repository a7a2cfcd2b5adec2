"""The embedded MLflow store (SQLite under var/): built whole by migrate, never half-made; doctor names the cause."""

import json
import sqlite3
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from mlops import local_store
from tests.conftest import ROOT, run_manage, server_url


def _doctor_in_process() -> dict[str, dict]:
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("doctor", "--json", stdout=out)
    return {row["check"]: row for row in json.loads(out.getvalue())}


@pytest.mark.django_db
def test_doctor_names_a_store_not_created_yet_and_creates_nothing(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_REGISTRY_URI = ""

    mlflow = _doctor_in_process()["mlflow"]

    assert mlflow["status"] == "FAIL"
    assert mlflow["detail"] == (
        f"local store {tmp_path / 'mlflow.db'} (the default, MLFLOW_TRACKING_URI is not set) is not created yet"
    )
    assert mlflow["remedy"].startswith("Run manage.py migrate: it creates the local MLflow store")
    assert "writable" not in mlflow["remedy"]
    assert list(tmp_path.iterdir()) == []


def _half_made(path):
    # What a creation cut off halfway leaves: some of MLflow's tables, no Default experiment.
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE experiments (experiment_id integer primary key, name varchar(256))")
        db.execute("CREATE TABLE latest_metrics (key varchar(250), value float)")


def test_migrate_builds_the_store_whole_and_sets_a_half_made_one_aside(scratch_db, tmp_path):
    # The embedded default, whatever MLflow server other tests exported to the environment.
    env = {
        "DATABASE_URL": server_url(scratch_db),
        "DJANGO_VAR_DIR": str(tmp_path),
        "MLFLOW_TRACKING_URI": "",
        "MLFLOW_REGISTRY_URI": "",
    }
    _half_made(tmp_path / "mlflow.db")

    before = json.loads(run_manage("doctor", "--json", "--timeout", "120", env=env).stdout)
    migrated = run_manage("migrate", "--no-input", env=env)
    after = run_manage("doctor", "--json", "--timeout", "120", env=env)

    mlflow = next(row for row in before if row["check"] == "mlflow")
    assert mlflow["status"] == "FAIL"
    assert "is incomplete: its creation was cut off halfway" in mlflow["detail"]
    assert mlflow["remedy"].startswith("Run manage.py migrate: it moves the incomplete file aside")
    assert migrated.returncode == 0, migrated.stderr
    assert f"Created the local MLflow store at {tmp_path / 'mlflow.db'}." in migrated.stdout
    assert local_store.state(tmp_path / "mlflow.db") == local_store.READY
    assert (tmp_path / "mlflow.db.incomplete-1").exists()
    assert not [path.name for path in tmp_path.iterdir() if ".creating-" in path.name]
    mlflow = next(row for row in json.loads(after.stdout) if row["check"] == "mlflow")
    assert mlflow["status"] == "OK", mlflow
    assert mlflow["detail"].startswith(f"local store sqlite:///{tmp_path / 'mlflow.db'} opens")

    # A second migrate leaves a whole store alone.
    again = run_manage("migrate", "--no-input", env=env)
    assert again.returncode == 0, again.stderr
    assert "Created the local MLflow store" not in again.stdout
    assert not (tmp_path / "mlflow.db.incomplete-2").exists()


def test_the_mlflow_check_imports_mlflow_before_its_deadline_starts(tmp_path):
    # The deadline (within) must find mlflow imported already: the import is ours, not MLflow's answer.
    code = f"""
import sys, django
django.setup()
from django.conf import settings
from mlops import doctor, local_store
settings.MLFLOW_TRACKING_URI = "sqlite:///{tmp_path / "mlflow.db"}"
assert "mlflow" not in sys.modules
seen = []
real = doctor.within
def within(seconds, function, *args):
    seen.append("mlflow.tracking" in sys.modules)
    return real(seconds, function, *args)
doctor.within = within
local_store.ensure()
print(doctor.check_mlflow(None, 600).status, seen)
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "smartmaint.settings", "DJANGO_DEBUG": "true", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    status, seen = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert status == "OK"
    assert seen.startswith("[True") and "False" not in seen

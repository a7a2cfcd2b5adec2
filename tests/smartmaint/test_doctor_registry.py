"""The doctor's registry: each app registers the checks of what it owns, and smartmaint imports no app."""

import subprocess
import sys

from smartmaint import doctor
from tests.conftest import ROOT


def test_each_app_registers_the_checks_of_what_it_owns_in_report_order():
    owners = {check.name: check.function.__module__ for check in doctor.registered()}

    assert list(owners) == [
        "database",
        "timescaledb",
        "migrations",
        "reading_times",
        "redis",
        "s3",
        "mlflow",
        "champion_models",
        "smtp",
        "workers",
        "beat",
        "jobs",
    ]
    assert owners["timescaledb"] == owners["reading_times"] == "readings.doctor"
    assert owners["mlflow"] == owners["champion_models"] == "mlops.doctor"
    for name in ("database", "migrations", "redis", "s3", "smtp", "workers", "beat", "jobs"):
        assert owners[name] == "smartmaint.doctor_checks", name


def test_a_check_whose_requirement_failed_is_skipped_in_that_requirements_words(settings):
    calls = []
    saved = dict(doctor._registry)
    try:
        doctor._registry.clear()
        doctor.register(
            lambda connection, timeout: doctor.Result("base", doctor.FAIL, "down", "fix it"),
            name="base",
            order=1,
            unavailable="the base is down",
        )
        doctor.register(
            lambda connection, timeout: calls.append("dependent"), name="dependent", order=2, requires=["base"]
        )
        doctor.register(lambda connection, timeout: 1 / 0, name="buggy", order=3, skip_names=["buggy_a", "buggy_b"])

        results = doctor.run_checks()
    finally:
        doctor._registry.clear()
        doctor._registry.update(saved)

    assert calls == []
    assert [(r.check, r.status, r.detail) for r in results] == [
        ("base", "FAIL", "down"),
        ("dependent", "SKIP", "not checked: the base is down"),
        ("buggy", "FAIL", "ZeroDivisionError: division by zero"),
    ]


def test_the_registry_and_smartmaints_checks_import_no_app():
    code = (
        "import sys, smartmaint.doctor, smartmaint.doctor_checks; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sensors', 'readings', 'mlops'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "smartmaint.settings", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "[]"

"""`manage.py doctor` on TimescaleDB: the hypertable and its policies as `migrate` leaves them, and drift from settings.

PGlite serves one connection at a time: the command runs in-process, on the test's own connection.
"""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = [pytest.mark.timescale, pytest.mark.django_db]

TIMESCALE_CHECKS = ("timescaledb", "hypertable", "compression_policy", "refresh_policy", "retention_policy")


def doctor() -> tuple[dict[str, dict], int]:
    out = StringIO()
    try:
        call_command("doctor", "--json", stdout=out)
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return {row["check"]: row for row in json.loads(out.getvalue())}, code


def test_hypertable_and_policies_are_ok_and_drift_from_the_settings_fails(settings):
    results, _ = doctor()

    assert {check: results[check]["status"] for check in TIMESCALE_CHECKS} == dict.fromkeys(TIMESCALE_CHECKS, "OK")
    assert results["timescaledb"]["detail"].startswith("timescaledb 2.")
    assert results["hypertable"]["detail"].startswith("readings_reading is a hypertable")
    assert "compression enabled" in results["hypertable"]["detail"]
    assert results["compression_policy"]["detail"].startswith("chunks compressed after 7 days")
    assert results["refresh_policy"]["detail"].startswith("readings_hourly refreshed every 00:30:00")
    assert results["retention_policy"]["detail"].startswith("none")
    for check in ("database", "migrations_table", "unapplied_migrations", "ghost_migrations"):
        assert results[check]["status"] == "OK", results[check]

    # Settings changed without the `migrate` that re-applies the policies.
    settings.READINGS_RETENTION_DAYS = 30
    settings.READINGS_COMPRESS_AFTER = "3 days"
    results, code = doctor()

    assert code == 1
    assert results["retention_policy"]["status"] == "FAIL"
    assert (
        results["retention_policy"]["detail"] == "no retention policy on readings_reading (READINGS_RETENTION_DAYS=30)"
    )
    assert results["compression_policy"]["status"] == "FAIL"
    assert "READINGS_COMPRESS_AFTER is 3 days" in results["compression_policy"]["detail"]
    assert results["retention_policy"]["remedy"].startswith("Run manage.py migrate")

"""A scheduled scoring run that scored 0 windows while readings were due is flagged: on the scoring runs' admin
list, on the fleet dashboard (the "Score readings" job's flag) and by the doctor's jobs line."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

from mlops.models import ScoringRun
from mlops.selectors import readings_due_count, scoring_runs_flagged
from readings.models import Reading
from smartmaint.doctor import FAIL, OK
from smartmaint.doctor_checks import check_jobs
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, tzinfo=UTC)
RUNS = reverse("admin:mlops_scoringrun_changelist")


def run(*, end: datetime, windows: int, readings: int | None, sensor_type: str = "temperature") -> ScoringRun:
    return ScoringRun.objects.create(
        sensor_type=sensor_type,
        model_name=f"smartmaint-anomaly-{sensor_type}",
        model_version="1",
        start=end - timedelta(minutes=1),
        end=end,
        windows=windows,
        anomalies=0,
        readings=readings,
    )


def test_readings_due_are_those_after_the_latest_watermark_whose_windows_were_ready(settings):
    settings.SCORING_GRACE_SECONDS = 600
    a, b = SensorFactory(sampling_interval=60), SensorFactory(sampling_interval=60)
    Reading.objects.bulk_create(
        Reading(sensor=sensor, time=T0 + timedelta(minutes=m), value=20.0) for sensor in (a, b) for m in range(120)
    )
    since = {a.pk: T0 + timedelta(minutes=30), b.pk: T0 + timedelta(minutes=20)}
    # From 00:30 (a's watermark, the later) to 02:00 less a 10-minute window and 10 minutes' grace: 01:40.
    until = T0 + timedelta(hours=2)
    assert readings_due_count(sensors=[a, b], since=since, until=until, window=10) == 2 * 70
    # A run within a window and its grace of the watermark: nothing due, though readings arrived.
    assert readings_due_count(sensors=[a, b], since=since, until=T0 + timedelta(minutes=45), window=10) == 0
    assert readings_due_count(sensors=[], since={}, until=until, window=10) == 0


def test_a_run_that_scored_nothing_while_readings_were_due_is_flagged_until_a_later_run_scores():
    root = User.objects.create_superuser("root", email="root@example.com", password="pw")
    client = Client()
    client.force_login(root)
    run(end=T0, windows=0, readings=0)  # nothing due: not flagged
    run(end=T0 + timedelta(minutes=1), windows=0, readings=None, sensor_type="vibration")  # on request
    stuck = run(end=T0 + timedelta(minutes=2), windows=0, readings=12)
    assert list(ScoringRun.objects.flagged()) == [stuck]
    assert [flag.problem for flag in scoring_runs_flagged()] == [
        "the latest temperature scoring run (2026-06-01 00:02) scored 0 windows while 12 reading(s) were due"
    ]

    page = client.get(RUNS).content.decode()
    assert page.count("0 windows, 12 readings due") == 1
    flagged = client.get(RUNS, {"flagged": "yes"})
    assert list(flagged.context["cl"].result_list) == [stuck]

    [result] = check_jobs(connection, 5)
    assert result.status == FAIL and "Score readings: the latest temperature scoring run" in result.detail
    dashboard = client.get(reverse("admin:index")).content.decode()
    assert f'href="{RUNS}?flagged=yes"' in dashboard and "while 12 reading(s) were due" in dashboard

    # The next run scores the windows: the type's latest run is no longer flagged (the stuck one stays listed).
    run(end=T0 + timedelta(minutes=3), windows=5, readings=15)
    assert scoring_runs_flagged() == []
    [result] = check_jobs(connection, 5)
    assert result.status == OK
    assert 'id="sm-flags"' not in client.get(reverse("admin:index")).content.decode()

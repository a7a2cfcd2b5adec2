"""Alerts and anomalies appear in the admin console's dashboard and sensor charts."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User

from mlops.models import Anomaly
from mlops.selectors import anomaly_chart_marks, anomaly_chart_marks_many
from mlops.services import alert_raise
from readings.selectors import sensor_chart_marks
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db


def test_open_alerts_are_listed_on_the_dashboard(client):
    sensor = SensorFactory()
    alert_raise(sensor=sensor, kind="anomaly", severity="critical", title="Bearing temperature climbing")
    client.force_login(User.objects.create_user("staff", password="x", is_staff=True, is_superuser=True))
    page = client.get("/admin/").content.decode()
    assert "Bearing temperature climbing" in page


def test_anomalies_are_marked_on_the_sensor_chart():
    sensor = SensorFactory()
    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    Anomaly.objects.create(
        sensor=sensor, start=t0, end=t0 + timedelta(minutes=10), score=0.93, model_name="m", model_version="3"
    )
    marks = sensor_chart_marks(sensor=sensor, start=t0 - timedelta(hours=1), end=t0 + timedelta(hours=1))
    assert {
        "series": "Anomalies",
        "label": "score 0.93 (m v3)",
        "start": t0,
        "end": t0 + timedelta(minutes=10),
    } in marks


def test_an_assets_anomalies_are_read_once_for_all_its_sensors(django_assert_num_queries):
    sensors = [SensorFactory() for _ in range(3)]
    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    for n, sensor in enumerate(sensors[:2]):
        for k in range(n + 1):
            start = t0 + timedelta(minutes=20 * k)
            Anomaly.objects.create(
                sensor=sensor,
                start=start,
                end=start + timedelta(minutes=5),
                score=0.5 + k / 10,
                model_name="m",
                model_version="1",
            )
    start, end = t0 - timedelta(hours=1), t0 + timedelta(hours=1)
    expected = {sensor.pk: anomaly_chart_marks(sensor=sensor, start=start, end=end) for sensor in sensors}
    with django_assert_num_queries(1):
        assert anomaly_chart_marks_many(sensors=sensors, start=start, end=end) == expected
    assert [len(marks) for marks in expected.values()] == [1, 2, 0]

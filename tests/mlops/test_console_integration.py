"""Alerts and anomalies appear in the admin console's dashboard and sensor charts."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User

from mlops.models import Anomaly
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

"""Readings stored before READINGS_MIN_TIME existed (year 1 BC, a reset clock) break no read path; doctor finds
them and delete_readings removes them."""

import csv
import io
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from mlops.selectors import sensor_series
from readings.models import Reading
from readings.services import ReadingBatch, readings_insert
from tests.admin.conftest import make_staff
from tests.factories import SensorFactory
from tests.smartmaint.test_doctor import doctor

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture
def poisoned():
    """A sensor with 5 good readings and two stored clock faults: 1 BC (which Python cannot hold) and 1970."""
    sensor = SensorFactory()
    readings_insert(
        batch=ReadingBatch.from_columns(
            sensor=[sensor.pk] * 5,
            time=[(T0 + timedelta(minutes=i)).replace(tzinfo=None) for i in range(5)],
            value=[float(i) for i in range(5)],
            quality=[1.0] * 5,
        )
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO readings_reading (sensor_id, time, value, quality) VALUES "
            "(%s, '0001-01-01T00:00:00+01:00'::timestamptz, 99, 1), (%s, '1970-01-01T00:00:00Z', 98, 1)",
            [sensor.pk, sensor.pk],
        )
    return sensor


@pytest.fixture
def reader():
    client = APIClient()
    client.force_authenticate(User.objects.create_user("reader"))
    return client


def test_readings_json_csv_aggregates_and_latest_survive_and_hide_them(poisoned, reader, settings):
    # A later bound than the default keeps the aggregate range from year 1 within the bucket limit.
    settings.READINGS_MIN_TIME = datetime(2020, 1, 1, tzinfo=UTC)
    base = f"/api/v1/sensors/{poisoned.sensor_id}"
    page = reader.get(f"{base}/readings?ordering=time")
    assert page.status_code == 200
    assert [row["value"] for row in page.json()["results"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert reader.get(f"{base}/readings?from=0001-01-01T00:00:00Z").status_code == 200

    response = reader.get(f"{base}/readings?format=csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1 + 5

    aggregates = reader.get(f"{base}/aggregates?from=0001-01-01T00:00:00Z&to=2026-02-02T00:00:00Z&bucket=1d")
    assert aggregates.status_code == 200, aggregates.json()
    assert [bucket["avg"] for bucket in aggregates.json()["buckets"]] == [2.0]
    # Year 1 with an offset leaves Python's datetime range in UTC: a clear 400, not a 500.
    assert reader.get(f"{base}/aggregates?from=0001-01-01T00:00:00%2B01:00&bucket=1d").status_code == 400

    assert reader.get(f"{base}/latest").json()["value"] == 4.0


def test_console_chart_and_browser_survive(poisoned):
    client = Client()
    client.force_login(make_staff())
    chart = client.get(
        f"/admin/sensors/sensor/{poisoned.pk}/change/?range=custom&from=1960-01-01T00:00&to=2026-02-02T00:00"
    )
    assert chart.status_code == 200
    browser = client.get(f"/admin/readings/browse/?sensor={poisoned.pk}&size=100")
    assert [row["value"] for row in browser.context["rows"]] == [4.0, 3.0, 2.0, 1.0, 0.0]


def test_training_reads_only_the_valid_readings(poisoned):
    [series] = sensor_series(sensors=[poisoned], start=None, end=None)
    assert list(series.values) == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_doctor_counts_them_and_delete_readings_removes_only_them(poisoned):
    row = doctor()[0]["reading_times"]
    assert row["status"] == "FAIL"
    assert (
        f"2 reading(s) older than READINGS_MIN_TIME (1990-01-01T00:00:00+00:00) on {poisoned.sensor_id}"
        in (row["detail"])
    )
    assert "manage.py delete_readings --yes" in row["remedy"]

    dry = StringIO()
    call_command("delete_readings", stdout=dry)
    assert "2 reading(s) before 1990-01-01T00:00:00+00:00" in dry.getvalue()
    assert Reading.objects.filter(sensor=poisoned).count() == 7

    done = StringIO()
    call_command("delete_readings", "--yes", stdout=done)
    assert "Deleted 2 reading(s)" in done.getvalue()
    assert Reading.objects.filter(sensor=poisoned).count() == 5
    assert doctor()[0]["reading_times"]["status"] == "OK"

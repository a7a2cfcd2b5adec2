"""seed_data and ingest write to the hypertable; re-runs and retries add nothing."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from readings.models import FaultLabel, Reading
from sensors.models import APIKey, Sensor

pytestmark = [pytest.mark.timescale, pytest.mark.django_db]


def seed(*args):
    out = StringIO()
    call_command("seed_data", *args, stdout=out)
    return out.getvalue()


def test_seed_data_fills_the_hypertable_and_a_rerun_adds_nothing():
    args = ("--sensors", "8", "--readings", "2400", "--end", "2026-03-01T00:00:00Z")
    first = seed(*args)
    assert "readings: created 2400, already present 0" in first
    assert Sensor.objects.count() == 8 and Reading.objects.count() == 2400
    assert FaultLabel.objects.exists()
    [(chunks,)] = _fetch("SELECT count(*) FROM show_chunks('readings_reading')")
    assert chunks >= 1
    again = seed(*args)
    assert "readings: created 0, already present 2400" in again
    assert Reading.objects.count() == 2400


def test_ingest_stores_readings_and_a_retry_reports_duplicates():
    seed("--sensors", "4", "--readings", "0")
    _, raw = APIKey.objects.create_key(name="gateway", scope="ingest")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    body = {
        "readings": [
            {"sensor_id": f"sensor-00{1 + i % 4}", "time": (start + timedelta(seconds=i)).isoformat(), "value": i}
            for i in range(200)
        ]
    }
    assert client.post("/api/v1/readings/ingest", body, format="json").json()["accepted"] == 200
    retry = client.post("/api/v1/readings/ingest", body, format="json").json()
    assert (retry["accepted"], retry["duplicates"]) == (0, 200)
    assert Reading.objects.count() == 200


def _fetch(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()

"""Overlapping scheduled scoring runs split the sensors between them instead of scoring the same windows twice."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from mlops.models import Anomaly, ScoringWatermark
from mlops.services import readings_score_pending
from readings.models import Reading
from sensors.models import Sensor
from tests.conftest import server_dsn

# Transactional: the other run's connection must see the seeded fleet.
pytestmark = pytest.mark.django_db(transaction=True)
END = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_run_skips_the_sensors_another_run_holds_and_the_next_run_scores_them(mlflow_settings):
    call_command(
        "seed_data", "--sensors", "8", "--readings", "4000", "--anomaly-rate", "0.03", "--end", END.isoformat()
    )
    call_command("train_models", "--promote", stdout=StringIO())
    held, free = Sensor.objects.filter(sensor_type="vibration").order_by("pk")[:2]
    since, now = END - timedelta(hours=3), END + timedelta(minutes=1)

    # Another run is scoring ``held``: it holds the sensor's row until it has stored its anomalies.
    with psycopg.connect(server_dsn(connection.settings_dict["NAME"])) as other:
        other.execute("SELECT 1 FROM sensors_sensor WHERE id = %s FOR NO KEY UPDATE", [held.pk])
        result = readings_score_pending(sensors=[held, free], now=now, since=since)
        assert result.busy == 1 and result.windows > 0
        assert set(ScoringWatermark.objects.values_list("sensor_id", flat=True)) == {free.pk}
        assert not Anomaly.objects.filter(sensor=held).exists()
        # Ingest is not blocked by the claim: its foreign-key check takes KEY SHARE on the same row. (Were it
        # blocked, the lock timeout would fail the test rather than hang it.)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '30s'")
        Reading.objects.create(sensor=held, time=now + timedelta(minutes=5), value=1.0)
    # The other run has ended (its connection closed): the held sensor is free again.

    again = readings_score_pending(sensors=[held, free], now=now, since=since)
    assert again.busy == 0
    assert set(ScoringWatermark.objects.values_list("sensor_id", flat=True)) == {held.pk, free.pk}
    # Each window of each sensor scored once: the first run's count is the free sensor's, this one's the held one's.
    assert again.windows == result.windows
    last = readings_score_pending(sensors=[held, free], now=now, since=since)
    assert last.windows == 0 and last.busy == 0

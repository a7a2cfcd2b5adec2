"""The admin console on TimescaleDB: sparklines from readings_hourly agree with the raw rows; pages render."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from readings import selectors
from readings.models import Reading
from readings.selectors import readings_recent_count, sensor_latest_readings, sensor_sparklines
from readings.services import ReadingBatch, readings_insert
from tests.factories import SensorFactory

pytestmark = [pytest.mark.timescale, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def clear_cache():
    # Latest readings and the recent count are cached by sensor pk, which other databases reuse.
    cache.clear()
    yield
    cache.clear()


def fill(sensor, count, *, end, step=timedelta(minutes=1)):
    times = [(end - step * i).replace(tzinfo=None) for i in range(count)]
    readings_insert(
        batch=ReadingBatch.from_columns(
            sensor=[sensor.pk] * count, time=times, value=[float(i % 17) for i in range(count)], quality=[1.0] * count
        )
    )


def test_sparklines_come_from_readings_hourly_and_match_the_raw_rows(monkeypatch):
    now = timezone.now().replace(second=0, microsecond=0)
    online, quiet = SensorFactory(), SensorFactory()
    fill(online, 30 * 60, end=now)
    # 30 hours of data: the 24 whole hours of its sparkline are covered whatever the minute the test runs at.
    fill(quiet, 40 * 60, end=now - timedelta(days=4), step=timedelta(seconds=45))
    latest = sensor_latest_readings(sensor_pks=[online.pk, quiet.pk])
    with CaptureQueriesContext(connection) as queries:
        hourly = sensor_sparklines(latest=latest, now=now)
    assert len(queries) == 1 and "readings_hourly" in queries[0]["sql"]
    # The same request through the raw rows (the path of plain PostgreSQL and SQLite).
    monkeypatch.setattr(selectors, "timescaledb_enabled", lambda connection: False)
    raw = sensor_sparklines(latest=latest, now=now)
    assert set(hourly) == set(raw) == {online.pk, quiet.pk}
    for pk in raw:
        assert hourly[pk]["x"] == raw[pk]["x"] and len(raw[pk]["x"]) == 24
        assert hourly[pk]["y"] == pytest.approx(raw[pk]["y"])


def test_console_pages_render_on_timescaledb(client: Client):
    now = timezone.now().replace(second=0, microsecond=0)
    sensor = SensorFactory()
    fill(sensor, 3 * 24 * 60, end=now)
    assert readings_recent_count(now=now) == Reading.objects.filter(time__gt=now - timedelta(days=1)).count() + 1
    client.force_login(User.objects.create_superuser("root", password="x"))
    for url in (
        "/admin/",
        "/admin/sensors/sensor/",
        f"/admin/sensors/sensor/{sensor.pk}/change/?range=30d",
        f"/admin/readings/browse/?sensor={sensor.pk}",
    ):
        assert client.get(url).status_code == 200, url

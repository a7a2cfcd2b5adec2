"""GET /api/v1/fleet/status from its cached, pre-serialised body (readings.selectors.fleet_status_json): the same
bytes as the body computed afresh, and never older than what it shows (ingest, sensor changes, time passing)."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from readings.selectors import FLEET_GENERATION_KEY, fleet_generation, fleet_status, fleet_status_json
from readings.services import ReadingBatch, readings_insert
from sensors.choices import APIKeyScope, SensorStatus
from sensors.models import Sensor
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/fleet/status"


def put(sensor, moment: datetime, value: float) -> None:
    readings_insert(
        batch=ReadingBatch.from_columns(
            sensor=[sensor.pk], time=[moment.astimezone(UTC).replace(tzinfo=None)], value=[value], quality=[1.0]
        )
    )


def computed(now: datetime) -> bytes:
    """The body as the view wrote it before the cache: fleet_status's rows through the API's JSON renderer."""
    states = fleet_status(sensors=Sensor.objects.all(), now=now)
    counts = Counter(state["connectivity"] for state in states)
    counts["out_of_range"] = sum(1 for state in states if state["out_of_range"])
    counts["total"] = len(states)
    return JSONRenderer().render({"generated_at": now, "counts": counts, "sensors": states})


def test_the_cached_body_is_the_computed_body(django_assert_num_queries):
    now = timezone.now()
    online, stale, offline, _silent = (SensorFactory(sampling_interval=60, normal_max=50) for _ in range(4))
    put(online, now - timedelta(seconds=30, microseconds=123_457), 51.25)
    put(stale, now - timedelta(minutes=5), 20.0)
    put(offline, now - timedelta(hours=2), 20.0)
    first = fleet_status_json(sensors=Sensor.objects.all(), now=now)
    assert first == computed(now)
    later = now + timedelta(seconds=7, microseconds=1)
    with django_assert_num_queries(1):  # the sensors' count and last change; the rest from the cache
        warm = fleet_status_json(sensors=Sensor.objects.all(), now=later)
    assert warm == computed(later)
    assert warm != first  # the time and the ages moved on


def test_a_new_reading_shows_at_once(make_key, django_capture_on_commit_callbacks):
    sensor = SensorFactory(sampling_interval=60)
    gateway, reader = make_key(APIKeyScope.INGEST), make_key(APIKeyScope.READ)
    moment = timezone.now().replace(microsecond=0) - timedelta(seconds=20)
    with django_capture_on_commit_callbacks(execute=True):
        gateway.post(
            "/api/v1/readings/ingest",
            {"readings": [{"sensor_id": sensor.sensor_id, "time": moment.isoformat(), "value": 5.0}]},
        )
    assert reader.get(URL).json()["sensors"][0]["value"] == 5.0
    with django_capture_on_commit_callbacks(execute=True):
        later = (moment + timedelta(seconds=10)).isoformat()
        gateway.post(
            "/api/v1/readings/ingest", {"readings": [{"sensor_id": sensor.sensor_id, "time": later, "value": 9.0}]}
        )
    [row] = reader.get(URL).json()["sensors"]
    assert row["value"] == 9.0
    assert row["connectivity"] == "online"


def test_connectivity_changes_with_time_alone():
    now = timezone.now()
    sensor = SensorFactory(sampling_interval=60)
    put(sensor, now - timedelta(seconds=100), 1.0)
    assert b'"connectivity":"online"' in fleet_status_json(sensors=Sensor.objects.all(), now=now)
    # Three intervals after the reading it is stale, though nothing was written: the cached body must not serve.
    later = now + timedelta(seconds=81)
    body = fleet_status_json(sensors=Sensor.objects.all(), now=later)
    assert b'"connectivity":"stale"' in body
    assert body == computed(later)


def test_a_sensor_change_shows_at_once(staff_client):
    now = timezone.now()
    sensor = SensorFactory(sampling_interval=60, normal_max=100)
    put(sensor, now - timedelta(seconds=10), 60.0)
    assert b'"out_of_range":false' in fleet_status_json(sensors=Sensor.objects.all(), now=now)
    sensor.normal_max = 50
    sensor.save()
    assert b'"out_of_range":true' in fleet_status_json(sensors=Sensor.objects.all(), now=now)
    Sensor.objects.filter(pk=sensor.pk).update(status=SensorStatus.MAINTENANCE, updated_at=timezone.now())
    assert b'"status":"maintenance"' in fleet_status_json(sensors=Sensor.objects.all(), now=now)
    SensorFactory()
    assert fleet_status_json(sensors=Sensor.objects.all(), now=now).count(b'"sensor_id"') == 2


def test_each_caller_gets_the_sensors_it_may_see(make_key):
    mine, theirs = SensorFactory(asset__site="North"), SensorFactory(asset__site="South")
    for sensor in (mine, theirs):
        put(sensor, timezone.now() - timedelta(seconds=5), 1.0)
    everyone, north = make_key(APIKeyScope.READ), make_key(APIKeyScope.READ, site="North")
    assert {row["sensor_id"] for row in everyone.get(URL).json()["sensors"]} == {mine.sensor_id, theirs.sensor_id}
    assert [row["sensor_id"] for row in north.get(URL).json()["sensors"]] == [mine.sensor_id]
    assert [row["sensor_id"] for row in north.get(URL).json()["sensors"]] == [mine.sensor_id]


def test_the_api_serves_the_same_json_as_before(user_client):
    sensor = SensorFactory(sampling_interval=60)
    put(sensor, datetime(2026, 3, 1, tzinfo=UTC), 25.0)
    response = user_client.get(URL)
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["counts"] == {"offline": 1, "out_of_range": 0, "total": 1}
    assert body["sensors"][0]["time"] == "2026-03-01T00:00:00Z"
    assert body["sensors"][0]["age_seconds"] > 0
    # Indented and browsable renderings take the ordinary path.
    assert user_client.get(URL, HTTP_ACCEPT="application/json; indent=2").content.startswith(b"{\n")


def test_a_lost_generation_is_never_used_again():
    """Evicted or flushed, the generation comes back as a new one: what was cached under the old one stays unused."""
    first = fleet_generation()
    assert fleet_generation() == first
    cache.delete(FLEET_GENERATION_KEY)
    assert fleet_generation() not in (first, "none")

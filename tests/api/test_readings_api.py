"""Range queries (cursor pages, CSV), latest reading and fleet status."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from readings.selectors import latest_cache_key
from readings.services import ReadingBatch, readings_insert
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 2, 1, tzinfo=UTC)


def fill(sensor, count, start=T0, step=timedelta(minutes=1), value=lambda i: float(i)):
    times = [start + step * i for i in range(count)]
    readings_insert(
        batch=ReadingBatch.from_columns(
            sensor=[sensor.pk] * count,
            time=[t.replace(tzinfo=None) for t in times],
            value=[value(i) for i in range(count)],
            quality=[1.0] * count,
        )
    )
    return times


def test_range_is_inclusive_from_and_exclusive_to(user_client):
    sensor = SensorFactory()
    fill(sensor, 10)
    url = f"/api/v1/sensors/{sensor.sensor_id}/readings?from=2026-02-01T00:02:00Z&to=2026-02-01T00:05:00Z"
    body = user_client.get(url).json()
    assert [r["value"] for r in body["results"]] == [2.0, 3.0, 4.0]


def test_cursor_pagination_walks_the_whole_range_in_both_orders(user_client):
    sensor = SensorFactory()
    fill(sensor, 25)
    for ordering, expected in (("time", list(range(25))), ("-time", list(range(24, -1, -1)))):
        url, seen = f"/api/v1/sensors/{sensor.sensor_id}/readings?limit=10&ordering={ordering}", []
        while url:
            page = user_client.get(url).json()
            seen += [int(r["value"]) for r in page["results"]]
            url = page["next"]
        assert seen == expected


def test_bad_range_parameters_are_400s(user_client):
    sensor = SensorFactory()
    base = f"/api/v1/sensors/{sensor.sensor_id}/readings"
    assert user_client.get(f"{base}?from=soon").status_code == 400
    bad_order = user_client.get(f"{base}?from=2026-02-02T00:00:00Z&to=2026-02-01T00:00:00Z")
    assert bad_order.status_code == 400 and bad_order.json()["errors"][0]["attr"] == "to"
    assert user_client.get(f"{base}?ordering=value").status_code == 400
    assert user_client.get(f"{base}?cursor=garbage").status_code == 400


def test_unknown_sensor_is_a_404(user_client):
    assert user_client.get("/api/v1/sensors/ghost/readings").status_code == 404


def test_csv_streams_the_whole_range(user_client):
    sensor = SensorFactory()
    fill(sensor, 12_345)
    response = user_client.get(f"/api/v1/sensors/{sensor.sensor_id}/readings?format=csv")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["sensor_id", "time", "value", "quality"]
    assert len(rows) == 12_346
    assert rows[1] == [sensor.sensor_id, "2026-02-01T00:00:00+00:00", "0.0", "1.0"]
    assert float(rows[-1][2]) == 12_344.0


def test_csv_by_accept_header_and_in_descending_order(user_client):
    sensor = SensorFactory()
    fill(sensor, 3)
    response = user_client.get(f"/api/v1/sensors/{sensor.sensor_id}/readings?ordering=-time", HTTP_ACCEPT="text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r[2] for r in rows[1:]] == ["2.0", "1.0", "0.0"]


def test_latest_reports_age_connectivity_and_range(user_client):
    sensor = SensorFactory(normal_min=0, normal_max=10, sampling_interval=60)
    now = timezone.now().replace(microsecond=0)
    fill(sensor, 2, start=now - timedelta(seconds=90), step=timedelta(seconds=60), value=lambda i: 5.0 + 20 * i)
    body = user_client.get(f"/api/v1/sensors/{sensor.sensor_id}/latest").json()
    assert body["value"] == 25.0
    assert body["connectivity"] == "online"
    assert body["out_of_range"] is True
    assert 25 <= body["age_seconds"] <= 90


def test_fleet_status_counts_online_stale_offline_and_no_data(user_client):
    now = timezone.now()
    online, stale, offline, silent = (SensorFactory(sampling_interval=60) for _ in range(4))
    fill(online, 1, start=now - timedelta(seconds=30))
    fill(stale, 1, start=now - timedelta(minutes=5))
    fill(offline, 1, start=now - timedelta(hours=2))
    body = user_client.get("/api/v1/fleet/status").json()
    by_id = {s["sensor_id"]: s["connectivity"] for s in body["sensors"]}
    assert by_id == {
        online.sensor_id: "online",
        stale.sensor_id: "stale",
        offline.sensor_id: "offline",
        silent.sensor_id: "no_data",
    }
    assert body["counts"]["online"] == 1 and body["counts"]["no_data"] == 1 and body["counts"]["total"] == 4


def test_fleet_status_is_served_from_the_cache(user_client, django_assert_max_num_queries):
    sensors = SensorFactory.create_batch(20)
    for sensor in sensors:
        fill(sensor, 3)
    user_client.get("/api/v1/fleet/status")
    assert all(cache.get(latest_cache_key(sensor.pk)) for sensor in sensors)
    # Warm: one query for the sensor list, none per sensor.
    with django_assert_max_num_queries(2):
        assert len(user_client.get("/api/v1/fleet/status").json()["sensors"]) == 20


def test_readings_list_uses_the_primary_key_not_a_count(user_client, django_assert_max_num_queries):
    sensor = SensorFactory()
    fill(sensor, 2000, step=timedelta(seconds=1))
    with django_assert_max_num_queries(3) as queries:
        user_client.get(f"/api/v1/sensors/{sensor.sensor_id}/readings?limit=100")
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)

"""POST /api/v1/readings/ingest: per-item validation, idempotent retries, limits."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from readings.models import Reading
from readings.selectors import latest_cache_key
from sensors.choices import APIKeyScope
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/readings/ingest"


@pytest.fixture
def gateway(make_key):
    return make_key(APIKeyScope.INGEST)


def batch(sensor_id, count, start=datetime(2026, 3, 1, tzinfo=UTC), value=20.0):
    return [
        {"sensor_id": sensor_id, "time": (start + timedelta(seconds=10 * i)).isoformat(), "value": value + i}
        for i in range(count)
    ]


def test_valid_batch_is_stored_exactly(gateway):
    sensor = SensorFactory()
    items = batch(sensor.sensor_id, 3)
    items[1]["quality"] = 0.25
    response = gateway.post(URL, {"readings": items})
    assert response.status_code == 200
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": 0, "errors": []}
    stored = list(Reading.objects.filter(sensor=sensor).order_by("time").values_list("time", "value", "quality"))
    assert stored == [
        (datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC), 20.0, 1.0),
        (datetime(2026, 3, 1, 0, 0, 10, tzinfo=UTC), 21.0, 0.25),
        (datetime(2026, 3, 1, 0, 0, 20, tzinfo=UTC), 22.0, 1.0),
    ]


def test_retried_batch_adds_nothing_and_reports_duplicates(gateway):
    sensor = SensorFactory()
    items = batch(sensor.sensor_id, 50)
    gateway.post(URL, {"readings": items})
    again = gateway.post(URL, {"readings": items}).json()
    assert again == {"accepted": 0, "duplicates": 50, "rejected": 0, "errors": []}
    assert Reading.objects.count() == 50


def test_offsets_are_normalised_so_the_same_instant_is_a_duplicate(gateway):
    sensor = SensorFactory()
    gateway.post(URL, {"readings": [{"sensor_id": sensor.sensor_id, "time": "2026-03-01T10:00:00+02:00", "value": 1}]})
    body = gateway.post(
        URL, {"readings": [{"sensor_id": sensor.sensor_id, "time": "2026-03-01T08:00:00Z", "value": 1}]}
    ).json()
    assert body["duplicates"] == 1


def test_each_invalid_reading_is_reported_by_index_and_reason_and_the_rest_kept(gateway):
    sensor = SensorFactory()
    future = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    items = [
        {"sensor_id": sensor.sensor_id, "time": "2026-03-01T00:00:00Z", "value": 1.0},  # good
        {"sensor_id": "nope", "time": "2026-03-01T00:00:00Z", "value": 1.0},
        {"sensor_id": sensor.sensor_id, "time": "yesterday", "value": 1.0},
        {"sensor_id": sensor.sensor_id, "time": "2026-03-01T00:00:00", "value": 1.0},
        {"sensor_id": sensor.sensor_id, "time": future, "value": 1.0},
        {"sensor_id": sensor.sensor_id, "time": "2026-03-01T00:01:00Z", "value": "NaN"},
        {"sensor_id": sensor.sensor_id, "time": "2026-03-01T00:02:00Z", "value": True},
        {"sensor_id": sensor.sensor_id, "time": "2026-03-01T00:03:00Z", "value": 1.0, "quality": 1.5},
        "not an object",
        {"sensor_id": 7, "time": "2026-03-01T00:04:00Z", "value": 1.0},
        {"sensor_id": sensor.sensor_id, "time": "2026-03-01T00:05:00Z", "value": 2.0, "quality": 0},  # good
    ]
    response = gateway.post(URL, {"readings": items})
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 9)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "sensor_id"),
        (2, "time"),
        (3, "time"),
        (4, "time"),
        (5, "value"),
        (6, "value"),
        (7, "quality"),
        (8, None),
        (9, "sensor_id"),
    ]
    reasons = {e["index"]: e["reason"] for e in body["errors"]}
    assert "Unknown sensor 'nope'" in reasons[1]
    assert "UTC offset" in reasons[3]
    assert "300 s in the future" in reasons[4]
    assert Reading.objects.count() == 2


def test_json_nan_and_infinity_values_are_rejected(gateway):
    sensor = SensorFactory()
    sid = sensor.sensor_id
    raw = (
        f'{{"readings": [{{"sensor_id": "{sid}", "time": "2026-03-01T00:00:00Z", "value": NaN}},'
        f' {{"sensor_id": "{sid}", "time": "2026-03-01T00:01:00Z", "value": Infinity}}]}}'
    )
    response = gateway.post(URL, raw, content_type="application/json")
    # Either refused as invalid JSON or rejected per item: never stored.
    assert response.status_code in (200, 400)
    assert not Reading.objects.exists()


@pytest.mark.parametrize(
    "body",
    [{}, {"readings": "x"}, {"readings": []}, [], {"readings": None}],
    ids=["no-readings", "not-a-list", "empty", "top-level-list", "null"],
)
def test_malformed_envelope_is_a_400_with_the_field_path(gateway, body):
    response = gateway.post(URL, body, format="json")
    assert response.status_code == 400
    payload = response.json()
    assert payload["type"] == "validation_error"
    assert payload["errors"][0]["attr"] == "readings"


def test_unparseable_json_is_a_400(gateway):
    response = gateway.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "parse_error"


def test_more_than_the_batch_limit_is_refused(gateway, settings):
    settings.INGEST_MAX_BATCH = 10
    sensor = SensorFactory()
    response = gateway.post(URL, {"readings": batch(sensor.sensor_id, 11)})
    assert response.status_code == 400
    assert "from 1 to 10 readings" in response.json()["errors"][0]["detail"]
    assert not Reading.objects.exists()


def test_oversized_body_is_refused_with_413_before_parsing(gateway, settings):
    settings.INGEST_MAX_BODY_BYTES = 1000
    sensor = SensorFactory()
    body = json.dumps({"readings": batch(sensor.sensor_id, 40)})
    assert len(body) > 1000
    response = gateway.post(URL, body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "payload_too_large"
    assert not Reading.objects.exists()


def test_ten_thousand_readings_in_one_request(gateway):
    sensors = SensorFactory.create_batch(4)
    items = [item for sensor in sensors for item in batch(sensor.sensor_id, 2500)]
    body = gateway.post(URL, {"readings": items}).json()
    assert body["accepted"] == 10_000
    assert Reading.objects.count() == 10_000


def test_ingest_invalidates_the_cached_latest_reading(gateway, make_key, django_capture_on_commit_callbacks):
    sensor = SensorFactory()
    reader = make_key(APIKeyScope.READ)
    gateway.post(URL, {"readings": batch(sensor.sensor_id, 1, value=5.0)})
    assert reader.get(f"/api/v1/sensors/{sensor.sensor_id}/latest").json()["value"] == 5.0
    assert cache.get(latest_cache_key(sensor.pk)) is not None
    with django_capture_on_commit_callbacks(execute=True):
        later = batch(sensor.sensor_id, 1, start=datetime(2026, 3, 2, tzinfo=UTC), value=9.0)
        gateway.post(URL, {"readings": later})
    assert cache.get(latest_cache_key(sensor.pk)) is None
    assert reader.get(f"/api/v1/sensors/{sensor.sensor_id}/latest").json()["value"] == 9.0


def test_poisoned_items_are_rejected_one_by_one_and_the_rest_of_the_batch_is_stored(gateway):
    """Year 1, a NUL in the ID, integers beyond a float: each a per-item rejection, never a failed batch."""
    sensor = SensorFactory()
    huge = int("1" + "0" * 400)
    items = [
        {"sensor_id": sensor.sensor_id, "time": "2026-03-01T00:00:00Z", "value": 1.0},  # good
        {"sensor_id": sensor.sensor_id, "time": "0001-01-01T00:00:00+01:00", "value": 1.0},
        {"sensor_id": sensor.sensor_id, "time": "1970-01-01T00:00:00Z", "value": 1.0},  # a reset clock
        {"sensor_id": f"{sensor.sensor_id}\x00", "time": "2026-03-01T00:01:00Z", "value": 1.0},
        {"sensor_id": sensor.sensor_id, "time": "2026-03-01T00:02:00Z", "value": huge},
        {"sensor_id": sensor.sensor_id, "time": "2026-03-01T00:03:00Z", "value": 1.0, "quality": huge},
        {"sensor_id": sensor.sensor_id, "time": "2026-03-01T00:04:00Z", "value": -huge},
        {"sensor_id": sensor.sensor_id, "time": "2026-03-01T00:05:00Z", "value": 2.0},  # good
    ]
    # Built by hand: json.dumps writes the big integers out in digits, as a gateway would.
    response = gateway.post(URL, json.dumps({"readings": items}), content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 6)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "time"),
        (2, "time"),
        (3, "sensor_id"),
        (4, "value"),
        (5, "quality"),
        (6, "value"),
    ]
    assert "before 1990-01-01T00:00:00+00:00 (READINGS_MIN_TIME)" in body["errors"][0]["reason"]
    assert sorted(Reading.objects.values_list("value", flat=True)) == [1.0, 2.0]


def test_the_oldest_time_accepted_is_a_setting(gateway, settings):
    sensor = SensorFactory()
    settings.READINGS_MIN_TIME = datetime(1960, 1, 1, tzinfo=UTC)
    body = gateway.post(
        URL, {"readings": [{"sensor_id": sensor.sensor_id, "time": "1970-01-01T00:00:00Z", "value": 1}]}
    )
    assert body.json()["accepted"] == 1

"""Authorisation: each rule shown by the request it refuses."""

import pytest

from readings.models import Reading
from sensors.choices import APIKeyScope
from sensors.models import Asset
from tests.factories import AssetFactory, SensorFactory

pytestmark = pytest.mark.django_db

ASSET = {"code": "PUMP-900", "name": "Spare pump", "site": "North Plant"}


def reading(sensor_id, minute=0):
    return {"sensor_id": sensor_id, "time": f"2026-01-01T00:{minute:02d}:00Z", "value": 1.5}


def test_assets_and_sensors_are_readable_by_any_user_but_writable_by_staff_only(user_client, staff_client):
    assert user_client.get("/api/v1/assets").status_code == 200
    refused = user_client.post("/api/v1/assets", ASSET)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "permission_denied"
    assert staff_client.post("/api/v1/assets", ASSET).status_code == 201
    asset = Asset.objects.get(code="PUMP-900")
    assert user_client.delete(f"/api/v1/assets/{asset.pk}").status_code == 403
    assert user_client.patch(f"/api/v1/assets/{asset.pk}", {"name": "x"}).status_code == 403


def test_api_keys_never_write_assets_or_sensors(make_key):
    client = make_key(APIKeyScope.READ_INGEST)
    assert client.get("/api/v1/assets").status_code == 200
    assert client.post("/api/v1/assets", ASSET).status_code == 403


def test_ingest_only_key_cannot_read(make_key):
    sensor = SensorFactory()
    client = make_key(APIKeyScope.INGEST)
    assert client.get("/api/v1/sensors").status_code == 403
    assert client.get(f"/api/v1/sensors/{sensor.sensor_id}/readings").status_code == 403
    assert client.get("/api/v1/fleet/status").status_code == 403
    assert client.post("/api/v1/readings/ingest", {"readings": [reading(sensor.sensor_id)]}).status_code == 200


def test_read_only_key_cannot_ingest(make_key):
    sensor = SensorFactory()
    client = make_key(APIKeyScope.READ)
    response = client.post("/api/v1/readings/ingest", {"readings": [reading(sensor.sensor_id)]})
    assert response.status_code == 403
    assert not Reading.objects.exists()


def test_user_needs_the_ingest_permission(user_client, ingest_user_client):
    sensor = SensorFactory()
    body = {"readings": [reading(sensor.sensor_id)]}
    assert user_client.post("/api/v1/readings/ingest", body).status_code == 403
    response = ingest_user_client.post("/api/v1/readings/ingest", body)
    assert response.status_code == 200
    assert response.json()["accepted"] == 1


def test_key_limited_to_a_site_sees_and_writes_only_that_site(make_key):
    north = SensorFactory(asset=AssetFactory(site="North"))
    south = SensorFactory(asset=AssetFactory(site="South"))
    client = make_key(site="North")
    assert [s["sensor_id"] for s in client.get("/api/v1/sensors").json()["results"]] == [north.sensor_id]
    assert [a["site"] for a in client.get("/api/v1/assets").json()["results"]] == ["North"]
    assert client.get(f"/api/v1/sensors/{south.sensor_id}").status_code == 404
    assert client.get(f"/api/v1/sensors/{south.sensor_id}/readings").status_code == 404
    response = client.post(
        "/api/v1/readings/ingest", {"readings": [reading(north.sensor_id), reading(south.sensor_id)]}
    )
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    # The same words as for an ID that exists nowhere: a limited key learns nothing about other sites.
    unknown = client.post("/api/v1/readings/ingest", {"readings": [reading("no-such-sensor")]}).json()
    assert body["errors"] == [
        {
            "index": 1,
            "field": "sensor_id",
            "reason": f"Unknown sensor {south.sensor_id!r}, or not allowed for this API key.",
        }
    ]
    assert unknown["errors"][0]["reason"] == "Unknown sensor 'no-such-sensor', or not allowed for this API key."
    assert not Reading.objects.filter(sensor=south).exists()


def test_key_limited_to_assets(make_key):
    mine, other = SensorFactory(), SensorFactory()
    client = make_key(assets=[mine.asset])
    assert [s["sensor_id"] for s in client.get("/api/v1/sensors").json()["results"]] == [mine.sensor_id]
    statuses = client.get("/api/v1/fleet/status").json()["sensors"]
    assert [s["sensor_id"] for s in statuses] == [mine.sensor_id]
    body = client.post("/api/v1/readings/ingest", {"readings": [reading(other.sensor_id)]}).json()
    assert body["rejected"] == 1

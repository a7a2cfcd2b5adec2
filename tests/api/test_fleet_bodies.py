"""Asset and sensor bodies: the schema states what the server enforces (identifier pattern, string types, JSON
only), and the server refuses what the schema refuses."""

import re

import pytest

from sensors.models import Asset, Sensor
from tests.factories import AssetFactory, SensorFactory

pytestmark = pytest.mark.django_db

ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


@pytest.fixture
def schema(anon):
    return anon.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def test_identifier_pattern_is_in_the_schema(schema):
    components = schema["components"]["schemas"]
    for component, field in [
        ("AssetRequest", "code"),
        ("PatchedAssetRequest", "code"),
        ("SensorRequest", "sensor_id"),
        ("PatchedSensorRequest", "sensor_id"),
    ]:
        assert components[component]["properties"][field]["pattern"] == ID_PATTERN, (component, field)
        assert components[component]["properties"][field]["maxLength"] == 64


@pytest.mark.parametrize("code", ["PUMP-1\n", " PUMP-1", "PUMP-1 ", "c\x92\x02u", "-PUMP"])
def test_an_identifier_is_taken_exactly_as_given_or_refused(staff_client, code):
    # Each fails the schema's (ECMA) pattern; "PUMP-1\n" passed Python's `$`, and spaces were trimmed away.
    assert not re.fullmatch(ID_PATTERN[1:-1], code)
    response = staff_client.post("/api/v1/assets", {"code": code, "name": "Pump", "site": "North"}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "code"
    asset = AssetFactory()
    response = staff_client.post(
        "/api/v1/sensors",
        {"sensor_id": code, "asset": asset.pk, "sensor_type": "temperature", "unit": "C"},
        format="json",
    )
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "sensor_id"
    assert not Asset.objects.exclude(pk=asset.pk).exists() and not Sensor.objects.exists()


@pytest.mark.parametrize("value", [0, 1.5, True, ["x"], {"a": 1}])
def test_a_string_field_refuses_other_json_types(staff_client, value):
    asset = AssetFactory(notes="kept")
    response = staff_client.patch(f"/api/v1/assets/{asset.pk}", {"notes": value}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "notes"
    asset.refresh_from_db()
    assert asset.notes == "kept"
    sensor = SensorFactory()
    response = staff_client.patch(f"/api/v1/sensors/{sensor.sensor_id}", {"unit": value}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "unit"


def test_fleet_writes_are_json_only_in_the_schema_and_on_the_server(schema, staff_client):
    for path, method in [
        ("/api/v1/assets", "post"),
        ("/api/v1/assets/{id}", "put"),
        ("/api/v1/assets/{id}", "patch"),
        ("/api/v1/sensors", "post"),
        ("/api/v1/sensors/{sensor_id}", "put"),
        ("/api/v1/sensors/{sensor_id}", "patch"),
    ]:
        assert set(schema["paths"][path][method]["requestBody"]["content"]) == {"application/json"}, (path, method)
    sensor = SensorFactory(normal_min=1.0)
    url = f"/api/v1/sensors/{sensor.sensor_id}"
    # "null" in a form field is no number, and a form has no other way to say null: JSON says it.
    assert staff_client.patch(url, {"normal_min": "null"}, format="multipart").status_code == 415
    response = staff_client.patch(url, {"normal_min": None}, format="json")
    assert response.status_code == 200 and response.json()["normal_min"] is None
    assert (
        staff_client.post(
            "/api/v1/assets", "code=A-1&name=A&site=S", content_type="application/x-www-form-urlencoded"
        ).status_code
        == 415
    )
    assert (
        staff_client.post("/api/v1/assets", {"code": "A-1", "name": "A", "site": "S"}, format="json").status_code == 201
    )


@pytest.mark.parametrize("value", [False, True, "1.5", "60", [1], {"a": 1}])
def test_number_fields_refuse_other_json_types(staff_client, value):
    sensor = SensorFactory(normal_min=None, normal_max=5.0, sampling_interval=30)
    url = f"/api/v1/sensors/{sensor.sensor_id}"
    for field in ("normal_min", "normal_max", "sampling_interval"):
        response = staff_client.patch(url, {field: value}, format="json")
        assert response.status_code == 400 and response.json()["errors"][0]["attr"] == field, (field, value)
    sensor.refresh_from_db()
    assert (sensor.normal_min, sensor.normal_max, sensor.sampling_interval) == (None, 5.0, 30)
    assert staff_client.patch(url, {"normal_min": 1, "sampling_interval": 60.0}, format="json").status_code == 200

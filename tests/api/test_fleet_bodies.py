"""Asset and sensor bodies: the schema states what the server enforces, and the server refuses what the schema
refuses."""

import re

import pytest

from sensors.models import Asset, Sensor
from tests.factories import AssetFactory

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

"""The OpenAPI schema says what the server does: JSON-only ingest, blank strings, limits, CSV responses."""

import re

import pytest

from tests.factories import ReadingFactory, SensorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(anon):
    return anon.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def _params(operation):
    return {parameter["name"]: parameter for parameter in operation["parameters"]}


def test_ingest_is_json_only_in_the_schema_and_on_the_server(schema, make_key):
    body = schema["paths"]["/api/v1/readings/ingest"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json"}
    batch = schema["components"]["schemas"][body["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert (batch["properties"]["readings"]["minItems"], batch["properties"]["readings"]["maxItems"]) == (1, 10_000)
    sensor = SensorFactory()
    client = make_key()
    reading = {"sensor_id": sensor.sensor_id, "time": "2026-01-01T00:00:00Z", "value": "1"}
    assert client.post("/api/v1/readings/ingest", {"readings": [reading]}, format="multipart").status_code == 415
    assert (
        client.post(
            "/api/v1/readings/ingest", "readings=x", content_type="application/x-www-form-urlencoded"
        ).status_code
        == 415
    )
    assert client.post("/api/v1/readings/ingest", {"readings": [reading]}, format="json").status_code == 200


def test_strings_the_server_refuses_blank_are_non_blank_in_the_schema(schema, staff_client):
    components = schema["components"]["schemas"]
    for component, field in [
        ("AssetRequest", "name"),
        ("AssetRequest", "site"),
        ("TokenObtainPairRequest", "password"),
    ]:
        assert components[component]["properties"][field]["minLength"] == 1, (component, field)
        pattern = re.compile(components[component]["properties"][field]["pattern"])
        assert pattern.search("pump 1") and not pattern.search("   ") and not pattern.search("a\x00b"), field
    # ... and the server does refuse them, whitespace included.
    response = staff_client.post("/api/v1/assets", {"code": "A-1", "name": "   ", "site": "North"}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "name"


def test_aggregates_schema_states_its_limits_and_the_server_holds_to_them(schema, user_client):
    operation = schema["paths"]["/api/v1/sensors/{sensor_id}/aggregates"]["get"]
    agg = _params(operation)["agg"]
    assert agg["schema"]["type"] == "array" and agg["style"] == "form" and agg["explode"] is False
    assert set(agg["schema"]["items"]["enum"]) == {"avg", "min", "max", "count", "first", "last"}
    assert "10,000 buckets" in operation["responses"]["400"]["description"]
    assert "earlier than `to`" in operation["responses"]["400"]["description"]
    assert "earlier than `to`" in _params(operation)["from"]["description"]

    sensor = SensorFactory()
    ReadingFactory(sensor=sensor)
    base = f"/api/v1/sensors/{sensor.sensor_id}/aggregates?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"
    assert user_client.get(f"{base}&agg=avg,min").status_code == 200
    assert user_client.get(f"{base}&agg=").json()["agg"] == ["avg"]  # an empty array: the default
    # Not the schema's form (names, comma-separated): refused rather than guessed at.
    for bad in ("avg,,min", "avg, min", ",", "median"):
        assert user_client.get(f"{base}&agg={bad}").status_code == 400, bad
    too_many = user_client.get(base.replace("2026-01-02", "2027-01-02") + "&bucket=1m")
    assert too_many.status_code == 400 and too_many.json()["errors"][0]["attr"] == "bucket"


def test_readings_csv_is_described_and_errors_stay_json(schema, user_client):
    operation = schema["paths"]["/api/v1/sensors/{sensor_id}/readings"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert operation["responses"]["200"]["content"]["text/csv"]["schema"]["type"] == "string"
    assert "sensor_id,time,value,quality" in operation["description"]
    for code, response in operation["responses"].items():
        if int(code) >= 400:
            assert set(response["content"]) == {"application/json"}, code

    sensor = SensorFactory()
    bad = user_client.get(f"/api/v1/sensors/{sensor.sensor_id}/readings?format=csv&from=nonsense")
    assert bad.status_code == 400 and bad["Content-Type"] == "application/json"
    assert bad.json()["errors"][0]["attr"] == "from"

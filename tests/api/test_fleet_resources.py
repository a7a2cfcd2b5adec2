"""Assets and sensors: CRUD, filters, search, ordering, pagination, bounded queries."""

import pytest

from sensors.models import Sensor
from tests.factories import AssetFactory, SensorFactory

pytestmark = pytest.mark.django_db


def test_sensor_crud_by_staff(staff_client):
    asset = AssetFactory()
    created = staff_client.post(
        "/api/v1/sensors",
        {
            "sensor_id": "temp-7",
            "asset": asset.pk,
            "sensor_type": "temperature",
            "unit": "°C",
            "normal_min": 10,
            "normal_max": 90,
        },
    )
    assert created.status_code == 201, created.json()
    assert created.json()["asset_code"] == asset.code
    assert staff_client.get("/api/v1/sensors/temp-7").json()["unit"] == "°C"
    assert staff_client.patch("/api/v1/sensors/temp-7", {"status": "maintenance"}).json()["status"] == "maintenance"
    assert staff_client.delete("/api/v1/sensors/temp-7").status_code == 204
    assert not Sensor.objects.filter(sensor_id="temp-7").exists()


def test_validation_errors_name_the_field(staff_client):
    asset = AssetFactory()
    response = staff_client.post(
        "/api/v1/sensors",
        {
            "sensor_id": "bad id!",
            "asset": asset.pk,
            "sensor_type": "smell",
            "unit": "x",
            "normal_min": 5,
            "normal_max": 1,
        },
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error"
    assert {error["attr"] for error in body["errors"]} >= {"sensor_id", "sensor_type"}


def test_inverted_normal_range_is_refused(staff_client):
    asset = AssetFactory()
    response = staff_client.post(
        "/api/v1/sensors",
        {
            "sensor_id": "t-1",
            "asset": asset.pk,
            "sensor_type": "temperature",
            "unit": "°C",
            "normal_min": 9,
            "normal_max": 1,
        },
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "normal_min"


def test_sensor_filters_search_and_ordering(user_client):
    north = AssetFactory(site="North", code="FAN-1", name="Roof fan")
    south = AssetFactory(site="South")
    a = SensorFactory(asset=north, sensor_type="vibration", sensor_id="vib-1")
    b = SensorFactory(asset=south, sensor_type="temperature", status="maintenance", sensor_id="tmp-2")

    def ids(query):
        response = user_client.get(f"/api/v1/sensors?{query}")
        assert response.status_code == 200, response.json()
        return [s["sensor_id"] for s in response.json()["results"]]

    assert ids("site=North") == [a.sensor_id]
    assert ids(f"asset={south.pk}") == [b.sensor_id]
    assert ids("asset_code=FAN-1") == [a.sensor_id]
    assert ids("type=temperature") == [b.sensor_id]
    assert ids("status=maintenance") == [b.sensor_id]
    assert ids("q=roof") == [a.sensor_id]
    assert ids("ordering=-sensor_id") == ["vib-1", "tmp-2"]
    assert ids("ordering=sensor_id") == ["tmp-2", "vib-1"]


def test_unknown_filter_value_is_a_400_not_a_500(user_client):
    assert user_client.get("/api/v1/sensors?type=smell").status_code == 400
    assert user_client.get("/api/v1/sensors?asset=abc").status_code == 400


def test_asset_filters(user_client):
    AssetFactory(site="North", criticality="critical", code="A-1")
    AssetFactory(site="South", criticality="low", code="B-1")
    codes = [a["code"] for a in user_client.get("/api/v1/assets?criticality=critical").json()["results"]]
    assert codes == ["A-1"]
    assert [a["code"] for a in user_client.get("/api/v1/assets?q=south").json()["results"]] == ["B-1"]


def test_pagination(user_client):
    SensorFactory.create_batch(7)
    page = user_client.get("/api/v1/sensors?limit=3&offset=3").json()
    assert page["count"] == 7 and len(page["results"]) == 3 and page["next"] and page["previous"]


def test_sensor_list_query_count_does_not_grow_with_rows(user_client, django_assert_max_num_queries):
    SensorFactory.create_batch(3)
    with django_assert_max_num_queries(3) as few:
        user_client.get("/api/v1/sensors")
    SensorFactory.create_batch(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        user_client.get("/api/v1/sensors")

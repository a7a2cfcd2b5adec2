"""Query parameters the server used to ignore when invalid (falling back to a default, or taking the last of
several) are refused with a 400 in the API's error shape, and the schema says what is accepted."""

import pytest

from tests.factories import AssetFactory, ReadingFactory, SensorFactory

pytestmark = pytest.mark.django_db

LISTS = ["/api/v1/assets", "/api/v1/sensors", "/api/v1/anomalies", "/api/v1/fault-labels"]


@pytest.fixture
def schema(anon):
    return anon.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def _params(schema, path):
    return {parameter["name"]: parameter for parameter in schema["paths"][path]["get"]["parameters"]}


def _refused(response, attr):
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert body["type"] == "validation_error"
    assert [error["attr"] for error in body["errors"]] == [attr], body
    return body


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    ("query", "attr"),
    [
        ("offset=null", "offset"),
        ("offset=", "offset"),
        ("offset=-1", "offset"),
        ("offset=1&offset=2", "offset"),
        ("limit=false", "limit"),
        ("limit=0", "limit"),
        ("limit=%201", "limit"),
        ("limit={}", "limit"),
        ("limit=", "limit"),
    ],
)
def test_invalid_pagination_is_a_400_not_the_default_page(user_client, path, query, attr):
    _refused(user_client.get(f"{path}?{query}"), attr)


def test_pagination_in_the_schema_and_a_limit_above_the_maximum_is_capped(schema, user_client):
    params = _params(schema, "/api/v1/assets")
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1}
    assert params["offset"]["schema"] == {"type": "integer", "minimum": 0}
    assert "capped at 1000" in params["limit"]["description"]
    AssetFactory.create_batch(3)
    page = user_client.get("/api/v1/assets?limit=5000&offset=1").json()
    assert page["count"] == 3 and len(page["results"]) == 2


@pytest.mark.parametrize("path", ["/api/v1/anomalies", "/api/v1/fault-labels"])
@pytest.mark.parametrize("param", ["from", "to"])
def test_a_blank_or_repeated_date_time_filter_is_a_400_not_no_bound(user_client, path, param):
    _refused(user_client.get(f"{path}?{param}="), param)
    _refused(user_client.get(f"{path}?{param}=2026-01-01T00:00:00Z&{param}=2027-01-01T00:00:00Z"), param)
    assert user_client.get(f"{path}?{param}=2026-01-01T00:00:00Z").status_code == 200


def test_typed_filters_refuse_blank_free_text_filters_do_not(user_client):
    _refused(user_client.get("/api/v1/sensors?asset="), "asset")
    _refused(user_client.get("/api/v1/sensors?asset=1.5"), "asset")  # was read as asset 1
    _refused(user_client.get("/api/v1/anomalies?status="), "status")
    _refused(user_client.get("/api/v1/fault-labels?sensor_pk="), "sensor_pk")
    _refused(user_client.get("/api/v1/sensors?site=a&site=b"), "site")
    # An empty string is a valid string: no filter (and what an HTML form sends for an empty field).
    for query in ("q=", "site=", "asset_code="):
        assert user_client.get(f"/api/v1/sensors?{query}").status_code == 200, query


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("ordering", ["", "nonsense", "-", "start,nonsense", " code"])
def test_unknown_ordering_is_a_400_not_the_default_order(user_client, path, ordering):
    _refused(user_client.get(f"{path}?ordering={ordering}"), "ordering")


def test_ordering_fields_are_listed_in_the_schema_and_work(schema, user_client):
    ordering = _params(schema, "/api/v1/assets")["ordering"]
    assert ordering["style"] == "form" and ordering["explode"] is False
    assert {"code", "-code", "site", "-created_at"} <= set(ordering["schema"]["items"]["enum"])
    AssetFactory(code="B-1", site="x")
    AssetFactory(code="A-1", site="y")
    codes = [row["code"] for row in user_client.get("/api/v1/assets?ordering=-site,code").json()["results"]]
    assert codes == ["A-1", "B-1"]
    _refused(user_client.get("/api/v1/assets?ordering=code&ordering=site"), "ordering")


def test_string_query_parameters_say_nul_is_refused(schema, user_client):
    for path, name in [("/api/v1/assets", "site"), ("/api/v1/sensors", "q"), ("/api/v1/anomalies", "model")]:
        assert _params(schema, path)[name]["schema"]["pattern"] == r"^[^\x00]*$", (path, name)
    _refused(user_client.get("/api/v1/assets?site=a%00"), "site")


def test_readings_refuse_a_blank_or_repeated_range_limit_or_ordering(user_client):
    sensor = SensorFactory()
    ReadingFactory(sensor=sensor)
    url = f"/api/v1/sensors/{sensor.sensor_id}/readings"
    for query, attr in [
        ("to=", "to"),
        ("from=", "from"),
        ("to=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z", "to"),
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=", "limit"),
        ("ordering=time&ordering=-time", "ordering"),
    ]:
        _refused(user_client.get(f"{url}?{query}"), attr)
    assert len(user_client.get(f"{url}?limit=20000").json()["results"]) == 1  # capped, not refused


def test_aggregates_refuse_a_blank_range_or_bucket_but_take_an_empty_agg(user_client):
    sensor = SensorFactory()
    url = f"/api/v1/sensors/{sensor.sensor_id}/aggregates"
    for query, attr in [("to=", "to"), ("from=", "from"), ("bucket=", "bucket"), ("fill=", "fill")]:
        _refused(user_client.get(f"{url}?{query}"), attr)
    assert user_client.get(f"{url}?agg=").json()["agg"] == ["avg"]

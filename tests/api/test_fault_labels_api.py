"""GET /api/v1/fault-labels: filters, overlap with a time range, pagination, ordering, visibility by API key."""

from datetime import UTC, datetime, timedelta

import pytest

from readings.choices import FaultKind, FaultSource
from readings.models import FaultLabel
from sensors.choices import APIKeyScope
from tests.factories import AssetFactory, SensorFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 5, 1, tzinfo=UTC)
URL = "/api/v1/fault-labels"


def _label(sensor, kind, minutes, length, source=FaultSource.SEED):
    start = T0 + timedelta(minutes=minutes)
    return FaultLabel.objects.create(
        sensor=sensor, kind=kind, start=start, end=start + timedelta(minutes=length), source=source
    )


@pytest.fixture
def labels():
    north, south = AssetFactory(site="North", code="PUMP-N"), AssetFactory(site="South", code="PUMP-S")
    n1, n2 = SensorFactory(asset=north, sensor_id="n-1"), SensorFactory(asset=north, sensor_id="n-2")
    s1 = SensorFactory(asset=south, sensor_id="s-1")
    return [
        _label(n1, FaultKind.SPIKE, 0, 2),  # [00:00, 00:02]
        _label(n2, FaultKind.STUCK, 0, 30),  # [00:00, 00:30], the same start as the first
        _label(s1, FaultKind.DROPOUT, 60, 10, FaultSource.MANUAL),  # [01:00, 01:10]
        _label(n1, FaultKind.DRIFT, 120, 90),  # [02:00, 03:30]
    ]


def ids(client, query=""):
    response = client.get(f"{URL}{query}")
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


def test_lists_labels_oldest_first_with_sensor_and_asset(user_client, labels):
    spike, stuck, dropout, drift = labels
    response = user_client.get(URL)
    assert response.json()["count"] == 4
    assert [row["id"] for row in response.json()["results"]] == [spike.pk, stuck.pk, dropout.pk, drift.pk]
    assert response.json()["results"][2] == {
        "id": dropout.pk,
        "sensor_id": "s-1",
        "asset_code": "PUMP-S",
        "kind": "dropout",
        "start": "2026-05-01T01:00:00Z",
        "end": "2026-05-01T01:10:00Z",
        "source": "manual",
        "created_at": response.json()["results"][2]["created_at"],
    }


def test_filters_by_sensor_asset_kind_and_source(user_client, labels):
    spike, stuck, dropout, drift = labels
    assert ids(user_client, "?sensor=n-1") == [spike.pk, drift.pk]
    assert ids(user_client, f"?sensor_pk={stuck.sensor_id}") == [stuck.pk]
    assert ids(user_client, "?asset=PUMP-S") == [dropout.pk]
    assert ids(user_client, f"?asset_pk={spike.sensor.asset_id}") == [spike.pk, stuck.pk, drift.pk]
    assert ids(user_client, "?kind=spike&kind=drift") == [spike.pk, drift.pk]
    assert ids(user_client, "?source=manual") == [dropout.pk]
    assert ids(user_client, "?sensor=nobody") == []


def test_time_range_gives_the_labels_overlapping_from_inclusive_to_exclusive(user_client, labels):
    spike, stuck, dropout, drift = labels
    assert ids(user_client, "?from=2026-05-01T00:02:00Z") == [spike.pk, stuck.pk, dropout.pk, drift.pk]
    assert ids(user_client, "?from=2026-05-01T00:02:01Z") == [stuck.pk, dropout.pk, drift.pk]
    assert ids(user_client, "?from=2026-05-01T00:31:00Z&to=2026-05-01T02:00:00Z") == [dropout.pk]
    assert ids(user_client, "?to=2026-05-01T01:00:00Z") == [spike.pk, stuck.pk]
    # Offsets become UTC; PostgreSQL refuses offsets beyond about 16 hours, so they must never reach it raw.
    assert ids(user_client, "?from=2026-05-01T20:40:00%2B20:30") == [stuck.pk, dropout.pk, drift.pk]  # 00:10Z


def test_pages_by_limit_and_offset_and_orders_by_start(user_client, labels):
    spike, stuck, dropout, drift = labels
    first = user_client.get(f"{URL}?limit=2").json()
    assert [row["id"] for row in first["results"]] == [spike.pk, stuck.pk]
    assert first["count"] == 4 and "offset=2" in first["next"]
    assert ids(user_client, "?limit=2&offset=2") == [dropout.pk, drift.pk]
    # Equal starts come in a stable order on every page.
    assert ids(user_client, "?ordering=-start") == [drift.pk, dropout.pk, spike.pk, stuck.pk]
    assert ids(user_client, "?ordering=-start&limit=1&offset=2") == [spike.pk]
    assert ids(user_client, "?ordering=-end") == [drift.pk, dropout.pk, stuck.pk, spike.pk]


@pytest.mark.parametrize(
    ("query", "attr"),
    [
        ("?kind=bogus", "kind"),
        ("?source=bogus", "source"),
        ("?from=yesterday", "from"),
        ("?sensor_pk=1.5", "sensor_pk"),
        ("?sensor_pk=99999999999999999999", "sensor_pk"),
        ("?asset_pk=-1", "asset_pk"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(user_client, labels, query, attr):
    response = user_client.get(f"{URL}{query}")
    assert response.status_code == 400
    assert [error["attr"] for error in response.json()["errors"]] == [attr]


def test_api_keys_see_the_labels_of_the_sensors_within_their_limit(make_key, anon, labels):
    spike, stuck, dropout, drift = labels
    assert ids(make_key(APIKeyScope.READ), "") == [spike.pk, stuck.pk, dropout.pk, drift.pk]
    north = make_key(APIKeyScope.READ, site="North")
    assert ids(north) == [spike.pk, stuck.pk, drift.pk]
    assert ids(north, "?asset=PUMP-S") == []
    assert ids(make_key(APIKeyScope.READ_INGEST, assets=[dropout.sensor.asset])) == [dropout.pk]
    assert make_key(APIKeyScope.INGEST).get(URL).status_code == 403
    assert anon.get(URL).status_code == 401


def test_queries_do_not_grow_with_the_page(user_client, labels, django_assert_num_queries):
    sensor = labels[0].sensor
    for minutes in range(300, 400, 2):
        _label(sensor, FaultKind.SPIKE, minutes, 1)
    with django_assert_num_queries(3):  # the caller's site access, count, page (sensor and asset joined)
        response = user_client.get(f"{URL}?limit=100")
    assert len(response.json()["results"]) == 54


def test_the_schema_documents_the_endpoint_and_its_filters(anon):
    schema = anon.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/fault-labels"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {
        "sensor",
        "sensor_pk",
        "asset",
        "asset_pk",
        "kind",
        "source",
        "from",
        "to",
        "limit",
        "offset",
        "ordering",
    } <= names
    assert {"200", "400", "401", "403"} <= set(operation["responses"])

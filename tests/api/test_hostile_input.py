"""Input a client can craft answers 4xx with a reason, never 500: tampered cursors, NUL bytes in URLs,
metadata that is not an object, deleting what is still in use."""

import base64

import pytest

from readings.models import Reading
from sensors.models import Asset
from tests.factories import AssetFactory, SensorFactory

pytestmark = pytest.mark.django_db


def _cursor(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor("o=0&r=0&p=x"),  # a position that is no time
        _cursor("o=0&r=0&p=2026-13-45T00:00:00"),  # shaped like one, but no such date
        _cursor("o=x&r=0"),  # DRF's own "invalid cursor", a 404 by default
        "%%%not-base64",
    ],
)
def test_a_tampered_cursor_is_a_400(user_client, cursor):
    sensor = SensorFactory()
    response = user_client.get(f"/api/v1/sensors/{sensor.sensor_id}/readings", {"cursor": cursor})
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "cursor"


def test_a_genuine_cursor_still_pages(user_client):
    sensor = SensorFactory()
    for minute in range(3):
        Reading.objects.create(sensor=sensor, time=f"2026-01-01T00:0{minute}:00Z", value=minute)
    first = user_client.get(f"/api/v1/sensors/{sensor.sensor_id}/readings", {"limit": 2}).json()
    second = user_client.get(first["next"]).json()
    assert [row["value"] for row in second["results"]] == [2.0]


@pytest.mark.parametrize("suffix", ["readings", "aggregates", "latest", "score"])
def test_a_nul_byte_in_the_sensor_id_of_the_url_is_a_404(user_client, suffix):
    sensor = SensorFactory()
    method = user_client.post if suffix == "score" else user_client.get
    response = method(f"/api/v1/sensors/{sensor.sensor_id}%00/{suffix}")
    assert response.status_code == 404
    assert response.json()["type"] == "client_error"
    assert user_client.get(f"/api/v1/sensors/{sensor.sensor_id}%00").status_code == 404


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [("null", ("null", "Must be a JSON object")), ("[1, 2]", "Must be a JSON object"), ('{"a": "x\\u0000"}', "NUL")],
)
def test_metadata_must_be_an_object_without_nul(staff_client, metadata, reason):
    asset = AssetFactory(metadata={"maker": "ACME"})
    # A form body is refused as a whole (the fleet's writes are JSON only).
    as_form = staff_client.patch(
        f"/api/v1/assets/{asset.pk}", f"metadata={metadata}", content_type="application/x-www-form-urlencoded"
    )
    assert as_form.status_code == 415
    response = staff_client.patch(
        f"/api/v1/assets/{asset.pk}", f'{{"metadata": {metadata}}}', content_type="application/json"
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["attr"] == "metadata"
    assert any(words in error["detail"] for words in ([reason] if isinstance(reason, str) else reason))
    asset.refresh_from_db()
    assert asset.metadata == {"maker": "ACME"}


def test_metadata_object_is_still_accepted(staff_client):
    asset = AssetFactory()
    response = staff_client.patch(f"/api/v1/assets/{asset.pk}", {"metadata": {"serial": "X-1"}})
    assert response.status_code == 200 and response.json()["metadata"] == {"serial": "X-1"}


def test_deleting_an_asset_that_still_has_sensors_is_a_409_naming_them(staff_client):
    asset = AssetFactory()
    held = sorted([SensorFactory(asset=asset).sensor_id, SensorFactory(asset=asset).sensor_id])
    response = staff_client.delete(f"/api/v1/assets/{asset.pk}")
    assert response.status_code == 409
    detail = response.json()["errors"][0]["detail"]
    assert f"is still used by 2 sensors: {held[0]}, {held[1]}" in detail
    assert Asset.objects.filter(pk=asset.pk).exists()

    empty = AssetFactory()
    assert staff_client.delete(f"/api/v1/assets/{empty.pk}").status_code == 204

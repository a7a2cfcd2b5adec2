"""Streamed CSV exports per process are capped (EXPORT_MAX_STREAMS): slow downloads cannot take every thread."""

import pytest

from tests.factories import ReadingFactory, SensorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sensor(db):
    sensor = SensorFactory()
    ReadingFactory.create_batch(3, sensor=sensor)
    return sensor


@pytest.fixture
def csv_url(sensor):
    return f"/api/v1/sensors/{sensor.sensor_id}/readings?format=csv"


def _start(response):
    """Begin sending the body, as the server does once the view has returned."""
    content = iter(response.streaming_content)
    assert next(content).startswith(b"sensor_id,")
    return content


def _abandon(response):
    """What the server does when the client goes away: close the response. The test client's wrapper of the
    body does it (keeping the test's database connection open) when the body it is sending is closed."""
    response._iterator.close()


def test_exports_beyond_the_limit_get_503_with_retry_after_until_one_ends(user_client, csv_url, settings):
    settings.EXPORT_MAX_STREAMS = 2
    user_client.raise_request_exception = False  # a 5xx is reported (got_request_exception); here it is expected
    first, second = user_client.get(csv_url), user_client.get(csv_url)
    assert first.status_code == second.status_code == 200
    streams = [_start(first), _start(second)]

    refused = user_client.get(csv_url)
    assert refused.status_code == 503
    assert int(refused["Retry-After"]) > 0
    assert b"Too many CSV exports" in refused.content
    # JSON pages are not exports: never refused.
    assert user_client.get(csv_url.replace("format=csv", "format=json")).status_code == 200

    # A download read to its end gives its slot back; so does one the client abandons (the server closes it).
    assert len(list(streams[0])) == 3
    assert user_client.get(csv_url).status_code == 200
    _abandon(second)
    assert user_client.get(csv_url).status_code == 200


def test_a_response_never_sent_holds_no_slot(user_client, csv_url, settings):
    settings.EXPORT_MAX_STREAMS = 1
    unsent = [user_client.get(csv_url) for _ in range(3)]
    assert [response.status_code for response in unsent] == [200, 200, 200]


def test_admin_export_beyond_the_limit_gets_503(admin_client, sensor, settings):
    settings.EXPORT_MAX_STREAMS = 1
    url = f"/admin/sensors/sensor/{sensor.pk}/readings.csv?range=24h"
    held = admin_client.get(url)
    assert held.status_code == 200
    _start(held)
    refused = admin_client.get(url)
    assert refused.status_code == 503 and int(refused["Retry-After"]) > 0
    _abandon(held)
    assert admin_client.get(url).status_code == 200

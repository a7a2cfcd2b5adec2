"""What each API key scope allows, endpoint by endpoint (docs/api.md, "Scopes")."""

import pytest
from rest_framework.test import APIClient

from mlops.models import Alert, Anomaly
from sensors.choices import APIKeyScope
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored_sensor():
    return SensorFactory(sensor_id="probe-score")


def score(client, sensor):
    return client.post(f"/api/v1/sensors/{sensor.sensor_id}/score", {"minutes": 60}, format="json")


@pytest.mark.parametrize("scope", [APIKeyScope.READ, APIKeyScope.INGEST])
def test_a_key_that_cannot_both_read_and_write_may_not_score(make_key, scored_sensor, scope):
    """Scoring writes anomalies, opens alerts and sends mail: a read-only key must not set that off."""
    response = score(make_key(scope), scored_sensor)
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "permission_denied"
    assert "read-and-ingest" in response.json()["errors"][0]["detail"]
    assert not Anomaly.objects.exists() and not Alert.objects.exists()


def test_a_read_and_ingest_key_may_score(make_key, scored_sensor):
    # Past the permission check; without a champion model the scoring itself answers 409 (or 503 without MLflow).
    assert score(make_key(APIKeyScope.READ_INGEST), scored_sensor).status_code in (200, 409, 503)


def test_a_read_and_ingest_key_may_not_score_outside_its_limit(make_key, scored_sensor):
    other = SensorFactory(asset__site="Elsewhere")
    client = make_key(APIKeyScope.READ_INGEST, site=scored_sensor.asset.site)
    assert score(client, other).status_code == 404


def test_only_staff_users_may_score(user_client, staff_client, scored_sensor):
    assert score(user_client, scored_sensor).status_code == 403
    assert score(staff_client, scored_sensor).status_code in (200, 409, 503)
    assert score(APIClient(), scored_sensor).status_code == 401


@pytest.mark.parametrize(
    ("scope", "reads", "ingests"),
    [(APIKeyScope.READ, True, False), (APIKeyScope.INGEST, False, True), (APIKeyScope.READ_INGEST, True, True)],
)
def test_each_scope_reads_and_ingests_as_documented(make_key, scored_sensor, scope, reads, ingests):
    client = make_key(scope)
    reading = {"sensor_id": scored_sensor.sensor_id, "time": "2026-01-01T00:00:00Z", "value": 1.0}
    assert (client.get("/api/v1/sensors").status_code == 200) is reads
    assert (client.get(f"/api/v1/sensors/{scored_sensor.sensor_id}/readings").status_code == 200) is reads
    assert (client.get("/api/v1/anomalies").status_code == 200) is reads
    assert (client.post("/api/v1/readings/ingest", {"readings": [reading]}).status_code == 200) is ingests
    # No key writes the fleet itself, whatever its scope.
    assert client.post("/api/v1/assets", {"code": "X-1", "name": "x", "site": "s"}).status_code == 403

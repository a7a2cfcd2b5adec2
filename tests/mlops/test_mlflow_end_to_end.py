"""Train, register, promote, load by alias, score, find the anomaly, raise the alert, mail it: all on real services."""

import psycopg
import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from mlops import registry, scoring
from mlops.models import Alert, AlertSubscription, Anomaly
from mlops.services import model_set_alias
from tests.conftest import server_dsn
from tests.mlflow_services import MLFLOW_SCHEMA

pytestmark = pytest.mark.django_db


def _tables(schema):
    with psycopg.connect(server_dsn(connection.settings_dict["NAME"])) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema]).fetchall()
    return {name for (name,) in rows}


def test_mlflow_and_the_app_share_one_database_without_clashing(mlflow_url):
    mlflow_tables, app_tables = _tables(MLFLOW_SCHEMA), _tables("public")
    assert "alembic_version" in mlflow_tables and "registered_models" in mlflow_tables
    assert "smartmaint_migrations" in app_tables and "readings_reading" in app_tables
    assert "alembic_version" not in app_tables and "django_migrations" not in app_tables
    assert not mlflow_tables & app_tables
    out = __import__("io").StringIO()
    call_command("migrate", "--no-input", stdout=out)
    assert "No migrations to apply." in out.getvalue()


@pytest.fixture
def fleet():
    call_command("seed_data", "--sensors", "8", "--readings", "8000", "--anomaly-rate", "0.03", stdout=None)


@pytest.fixture
def staff_subscriber():
    user = User.objects.create_user("ops", email="ops@example.com", password="x", is_staff=True)
    AlertSubscription.objects.create(user=user, min_severity="warning")
    return user


def test_train_promote_score_alert_and_mail(
    mlflow_settings, fleet, staff_subscriber, django_capture_on_commit_callbacks
):
    call_command("train_models", "--types", "temperature")
    client = registry.client()
    name = registry.model_name("temperature")
    first = client.get_model_version_by_alias(name, registry.CHAMPION)
    run = client.get_run(first.run_id)
    assert {"precision", "recall", "f1"} <= set(run.data.metrics)
    assert run.data.params["sensor_type"] == "temperature"
    # The quality target is test_quality's (the default fleet, fixed in time); this fleet ends now, so its faults
    # differ from run to run: here the detector must find faults, and its figures be logged.
    assert run.data.metrics["faults_detected"] >= 1 and run.data.metrics["f1"] > 0

    # A second training of the same data: a challenger, the champion stays.
    call_command("train_models", "--types", "temperature")
    challenger = client.get_model_version_by_alias(name, registry.CHALLENGER)
    assert challenger.version != first.version
    assert client.get_model_version_by_alias(name, registry.CHAMPION).version == first.version

    assert scoring.champion_model("temperature").version == str(first.version)
    model_set_alias(name=name, version=challenger.version, alias=registry.CHAMPION, user=staff_subscriber)
    mlflow_settings.MLFLOW_ALIAS_TTL = 0
    assert scoring.champion_model("temperature").version == str(challenger.version)

    api = APIClient()
    api.force_authenticate(staff_subscriber)
    sensor_id = "sensor-002"  # a temperature sensor of the seeded fleet
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/sensors/{sensor_id}/score", {"minutes": 24 * 60}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["model_version"] == str(challenger.version) and body["windows"] > 50
    stored = Anomaly.objects.filter(sensor__sensor_id=sensor_id)
    assert stored.count() == len(body["anomalies"])

    listed = api.get(f"/api/v1/anomalies?sensor={sensor_id}").json()
    assert listed["count"] == stored.count()
    if stored.filter(score__gte=0.8).exists():
        alert = Alert.objects.get(sensor__sensor_id=sensor_id, kind="anomaly")
        assert alert.notified_at is not None
        assert [m.to for m in mail.outbox] == [["ops@example.com"]]


def test_model_is_loaded_once_per_version_not_per_request(mlflow_settings, fleet):
    call_command("train_models", "--types", "vibration")
    first = scoring.champion_model("vibration")
    mlflow_settings.MLFLOW_ALIAS_TTL = 0
    again = scoring.champion_model("vibration")
    assert again is first and again.model is first.model


def test_scoring_with_mlflow_down_is_a_503_that_keeps_mlflow_address_in_the_server_log(
    settings, fleet, staff_subscriber, caplog
):
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"
    scoring.clear_model_cache()
    api = APIClient()
    # A 5xx is reported like any server error (got_request_exception); the
    # client must still get the JSON answer rather than the exception.
    api.raise_request_exception = False
    api.force_authenticate(staff_subscriber)
    response = api.post("/api/v1/sensors/sensor-002/score", {"minutes": 60}, format="json")
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.MLFLOW_RETRY_AFTER)
    assert response.json()["errors"][0]["detail"] == "The model registry is unavailable; retry later."
    assert "127.0.0.1" not in response.content.decode()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "MLflow at http://127.0.0.1:9" in logged and "Connection refused" in logged


def test_scoring_a_type_without_a_champion_is_a_409(mlflow_settings, fleet, staff_subscriber):
    # Other tests of the session register champions on the same server.
    mlflow_settings.MLFLOW_MODEL_PREFIX = "never-trained"
    api = APIClient()
    api.force_authenticate(staff_subscriber)
    response = api.post("/api/v1/sensors/sensor-001/score", {"minutes": 60}, format="json")
    assert response.status_code == 409
    assert "train_models" in response.json()["errors"][0]["detail"]

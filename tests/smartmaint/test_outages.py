"""Fault injection: Redis and PostgreSQL stopped and frozen (throwaway servers of the test's own), and what
clients get meanwhile: reads and ingest keep working without Redis; without the database, 503 with Retry-After
in the API's error shape and a plain page in the console; both recover without a restart."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.contrib.auth.models import User
from django.db import close_old_connections, connection
from django.test import Client, override_settings
from rest_framework.test import APIClient

from readings.models import Reading
from sensors.choices import APIKeyScope
from sensors.models import APIKey
from smartmaint.environment import cache_config
from tests.conftest import run_manage
from tests.factories import SensorFactory
from tests.outages import throwaway_postgres, throwaway_redis

# Generous: these bound "answers at all" (a hang would never end), not speed.
PATIENCE = 60.0


def _eventually(condition, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {PATIENCE:.0f} s: {what}")


# --- Redis ----------------------------------------------------------------------------------------------------------


@contextmanager
def redis_cache(port: int):
    config = cache_config(f"redis://127.0.0.1:{port}/0", key_prefix="outage", socket_timeout=0.5, retry_seconds=0.3)
    with override_settings(CACHES={"default": config}):
        yield


def _traffic(client: APIClient, sensor, start: datetime, count: int) -> list[int]:
    """Ingest, then read back, ``count`` times; the status codes of every request."""
    codes = []
    for i in range(count):
        moment = (start + timedelta(seconds=i)).isoformat()
        codes.append(
            client.post(
                "/api/v1/readings/ingest", {"readings": [{"sensor_id": sensor.sensor_id, "time": moment, "value": i}]}
            ).status_code
        )
        codes.append(client.get(f"/api/v1/sensors/{sensor.sensor_id}/readings").status_code)
        codes.append(client.get(f"/api/v1/sensors/{sensor.sensor_id}/latest").status_code)
        codes.append(client.get("/api/v1/fleet/status").status_code)
    return codes


@pytest.fixture
def gateway(db):
    _, raw = APIKey.objects.create_key(name="outage", scope=APIKeyScope.READ_INGEST)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_reads_and_ingest_keep_working_from_the_database_while_redis_is_out(gateway, caplog, fault):
    sensor = SensorFactory()
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with throwaway_redis() as server, redis_cache(server.port):
        assert set(_traffic(gateway, sensor, start, 2)) == {200}
        server.freeze() if fault == "frozen" else server.stop()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="smartmaint.cache"):
            codes = _traffic(gateway, sensor, start + timedelta(minutes=1), 10)
            ready = Client().get("/readyz")
        assert set(codes) == {200}
        assert Reading.objects.filter(sensor=sensor).count() == 12
        # Logged once for the whole outage, not once per request.
        outage = [r for r in caplog.records if "Cache (Redis) unavailable" in r.getMessage()]
        assert len(outage) == 1
        assert ready.status_code == 503 and ready.json()["failing"] == ["cache"]
        if fault == "frozen":
            server.thaw()
            # Recovery without a restart: once Redis answers, the app uses it again (throttle counters appear).
            probe = redis.Redis(port=server.port)
            probe.flushall()
            _eventually(
                lambda: gateway.get("/api/v1/fleet/status").status_code == 200 and bool(probe.keys("*throttle*")),
                "throttle counters written to Redis again",
            )
            assert Client().get("/readyz").status_code == 200


# --- PostgreSQL -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outage_db(tmp_path_factory):
    """A throwaway PostgreSQL with the app's schema, a staff user and an API key; yields (server, raw key)."""
    with throwaway_postgres() as server:
        url = f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        env = {"DATABASE_URL": url, "DJANGO_VAR_DIR": str(tmp_path_factory.mktemp("outage-var"))}
        migrated = run_manage("migrate", "--no-input", env=env)
        assert migrated.returncode == 0, migrated.stderr
        yield server


@contextmanager
def on_database(server, django_db_blocker, **options):
    """The app's default connection pointed at ``server`` (and back afterwards)."""
    with django_db_blocker.unblock():
        original = {**connection.settings_dict, "OPTIONS": dict(connection.settings_dict["OPTIONS"])}
        connection.close()
        connection.settings_dict.update(HOST="127.0.0.1", PORT=server.port, NAME="postgres", CONN_MAX_AGE=60)
        connection.settings_dict["OPTIONS"].update(options)
        try:
            yield
        finally:
            try:
                connection.close()
            finally:
                connection.settings_dict.clear()
                connection.settings_dict.update(original)


def _assert_unavailable_answers(api: APIClient, console: Client) -> None:
    response = api.get("/api/v1/sensors")
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["type"] == "server_error"
    assert body["errors"][0]["code"] == "database_unavailable"
    assert "127.0.0.1" not in response.content.decode()
    ingest = api.post("/api/v1/readings/ingest", {"readings": [{"sensor_id": "x", "time": "2026-03-01T00:00:00Z"}]})
    assert ingest.status_code == 503
    page = console.get("/admin/")
    assert page.status_code == 503 and int(page["Retry-After"]) > 0
    assert b"Database unavailable" in page.content


@pytest.mark.parametrize("fault", ["frozen", "stopped"])  # in this order: "stopped" ends the module's server
def test_api_answers_503_and_console_a_plain_page_while_postgres_is_out(outage_db, django_db_blocker, settings, fault):
    # Short timeouts for the test; production keeps the settings' defaults (5 s connect, 30 s statements).
    settings.DATABASE_STATEMENT_TIMEOUT, settings.DATABASE_CLIENT_GRACE = 2, 1
    with on_database(outage_db, django_db_blocker, connect_timeout=2):
        user, _ = User.objects.get_or_create(username="staff", defaults={"is_staff": True, "is_superuser": True})
        _, raw = APIKey.objects.create_key(name=f"outage {fault}", scope=APIKeyScope.READ_INGEST)
        # As a real client: the answer, not the server-side exception that Django's test client would re-raise.
        api = APIClient(raise_request_exception=False)
        api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
        console = Client(raise_request_exception=False)
        console.force_login(user)
        assert api.get("/api/v1/sensors").status_code == 200
        assert console.get("/admin/").status_code == 200

        if fault == "frozen":
            # The open, persistent connection is the hard case: the server never answers on it.
            outage_db.freeze()
        else:
            outage_db.stop()
        try:
            _assert_unavailable_answers(api, console)
            assert Client().get("/readyz").status_code == 503
        finally:
            if fault == "frozen":
                outage_db.thaw()

        if fault == "frozen":
            # Recovery without a restart: the broken connection is discarded at the end of its request (Django's
            # close_old_connections, which its test client leaves out, so it is called here), the next one works.
            def answers() -> bool:
                close_old_connections()
                return api.get("/api/v1/sensors").status_code == 200

            _eventually(answers, "the API answers again")
            assert console.get("/admin/").status_code == 200


def test_web_requests_have_a_statement_timeout_and_a_client_deadline_by_default(settings):
    assert settings.DATABASE_STATEMENT_TIMEOUT == 30 and settings.DATABASE_CLIENT_GRACE == 5
    assert connection.settings_dict["OPTIONS"]["options"] == "-c statement_timeout=30000"
    assert connection.client_deadline == 35

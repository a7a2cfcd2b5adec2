"""/healthz and /readyz against the real database and Redis, and against unreachable ones."""

import pytest
from django.db import connection
from django.test import override_settings

from smartmaint.environment import cache_config

CLOSED_PORT = 9  # discard: nothing listens on it here


def test_healthz_answers_without_touching_any_dependency(client):
    # No database fixture: pytest-django blocks database access, so this
    # proves liveness does not depend on the database.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ok_when_database_and_cache_answer(client, settings):
    assert settings.CACHES["default"]["BACKEND"] == "smartmaint.cache.FailOpenRedisCache"
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": {"status": "ok"}, "cache": {"status": "ok"}}


@pytest.mark.django_db
def test_readyz_names_the_cache_when_redis_is_down(client):
    with override_settings(CACHES={"default": cache_config(f"redis://127.0.0.1:{CLOSED_PORT}/0", key_prefix="t")}):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["cache"]
    assert body["checks"]["database"] == {"status": "ok"}
    # Public probe: which dependency, never its address.
    assert body["checks"]["cache"] == {"status": "error"}
    assert str(CLOSED_PORT) not in response.content.decode()


def test_readyz_names_the_database_when_it_is_unreachable(client, django_db_blocker):
    with django_db_blocker.unblock():
        original = dict(connection.settings_dict)
        connection.close()
        connection.settings_dict.update(HOST="127.0.0.1", PORT=CLOSED_PORT)
        try:
            response = client.get("/readyz")
        finally:
            connection.close()
            connection.settings_dict.update(original)
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["database"]
    assert body["checks"]["cache"] == {"status": "ok"}
    assert body["checks"]["database"] == {"status": "error"}
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db
def test_probes_by_ip_address_are_answered_but_other_urls_keep_the_host_check(client, settings):
    settings.ALLOWED_HOSTS = ["maint.example.com"]
    assert client.get("/healthz", HTTP_HOST="10.0.0.7").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.0.0.7").status_code == 200
    assert client.get("/admin/login/", HTTP_HOST="10.0.0.7").status_code == 400
    assert client.get("/admin/login/", HTTP_HOST="maint.example.com").status_code == 200

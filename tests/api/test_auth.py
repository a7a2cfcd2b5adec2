"""Authentication: every endpoint needs it except health and docs; JWT for people, hashed API keys for devices."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from sensors.models import APIKey
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db

PROTECTED = [
    ("get", "/api/v1/assets"),
    ("post", "/api/v1/assets"),
    ("get", "/api/v1/sensors"),
    ("get", "/api/v1/sensors/probe-x"),
    ("post", "/api/v1/readings/ingest"),
    ("get", "/api/v1/sensors/probe-x/readings"),
    ("get", "/api/v1/sensors/probe-x/aggregates"),
    ("get", "/api/v1/sensors/probe-x/latest"),
    ("get", "/api/v1/fleet/status"),
]


@pytest.mark.parametrize(("method", "url"), PROTECTED)
def test_every_endpoint_refuses_anonymous_requests_with_401(anon, method, url):
    response = getattr(anon, method)(url, {}, format="json")
    assert response.status_code == 401
    assert response.json()["type"] == "client_error"
    assert response.json()["errors"][0]["code"] == "not_authenticated"


@pytest.mark.parametrize("url", ["/healthz", "/api/v1/schema/", "/api/docs/"])
def test_health_and_docs_are_public(anon, url):
    assert anon.get(url).status_code == 200


def test_jwt_obtain_refresh_verify_and_use(anon):
    User.objects.create_user("maria", password="Str0ng-pass-phrase")
    tokens = anon.post("/api/v1/auth/token", {"username": "maria", "password": "Str0ng-pass-phrase"}).json()
    assert anon.post("/api/v1/auth/token/verify", {"token": tokens["access"]}).status_code == 200
    refreshed = anon.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]})
    assert refreshed.status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    assert client.get("/api/v1/sensors").status_code == 200


def test_jwt_with_wrong_password_or_forged_token_is_refused(anon):
    User.objects.create_user("maria", password="Str0ng-pass-phrase")
    assert anon.post("/api/v1/auth/token", {"username": "maria", "password": "nope"}).status_code == 401
    anon.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")
    assert anon.get("/api/v1/sensors").status_code == 401


def test_jwt_is_signed_with_jwt_secret(settings, anon):
    from rest_framework_simplejwt.settings import api_settings

    assert (settings.SIMPLE_JWT["SIGNING_KEY"]) == api_settings.SIGNING_KEY


def test_api_key_is_stored_hashed_and_only_its_prefix_is_visible(make_key):
    client = make_key()
    stored = APIKey.objects.get(pk=client.key.pk)
    assert client.raw_key.startswith(stored.prefix + ".")
    assert client.raw_key not in stored.hashed_key and stored.hashed_key.startswith("sha512$$")
    assert client.get("/api/v1/sensors").status_code == 200


def test_api_key_in_x_api_key_header_works(make_key):
    raw = make_key().raw_key
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    assert client.get("/api/v1/sensors").status_code == 200


@pytest.mark.parametrize("change", ["revoked", "expired", "wrong"])
def test_revoked_expired_or_wrong_keys_are_refused_with_401(make_key, change):
    client = make_key()
    if change == "revoked":
        APIKey.objects.filter(pk=client.key.pk).update(revoked=True)
    elif change == "expired":
        APIKey.objects.filter(pk=client.key.pk).update(expiry_date=timezone.now() - timedelta(minutes=1))
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {client.key.prefix}.wrongsecret")
    response = client.get("/api/v1/sensors")
    assert response.status_code == 401


def test_last_used_at_is_kept(make_key):
    client = make_key()
    assert APIKey.objects.get(pk=client.key.pk).last_used_at is None
    SensorFactory()
    client.get("/api/v1/sensors")
    assert APIKey.objects.get(pk=client.key.pk).last_used_at is not None

"""Clients for each kind of caller: anonymous, user, staff, ingest user, and API keys of each scope."""

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from rest_framework.test import APIClient

from sensors.choices import APIKeyScope
from sensors.models import APIKey


@pytest.fixture(autouse=True)
def clear_cache():
    # Throttle counters and latest-reading entries live in Redis; start each test clean.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def anon():
    return APIClient()


def _client_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def user_client(db):
    return _client_for(User.objects.create_user("reader", password="pw-reader-123"))


@pytest.fixture
def staff_client(db):
    return _client_for(User.objects.create_user("staff", password="pw-staff-123", is_staff=True))


@pytest.fixture
def ingest_user_client(db):
    user = User.objects.create_user("gateway-user", password="pw-gw-123")
    user.user_permissions.add(Permission.objects.get(codename="ingest_reading"))
    return _client_for(User.objects.get(pk=user.pk))


@pytest.fixture
def make_key(db):
    def make(scope=APIKeyScope.READ_INGEST, *, site="", assets=(), **fields):
        key, raw = APIKey.objects.create_key(name=f"{scope} key", scope=scope, site=site, **fields)
        key.assets.set(assets)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
        client.key = key
        client.raw_key = raw
        return client

    return make

"""Rates per user and per API key, counted in Redis; 429 carries Retry-After."""

import pytest
from django.core.cache import cache

pytestmark = pytest.mark.django_db


@pytest.fixture
def low_rates(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "3/min", "key": "2/min"}}


def test_user_over_the_rate_gets_429_with_retry_after(low_rates, user_client):
    statuses = [user_client.get("/api/v1/sensors").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = user_client.get("/api/v1/sensors")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["errors"][0]["code"] == "throttled"


def test_each_api_key_has_its_own_budget_in_the_shared_cache(low_rates, make_key):
    first, second = make_key(), make_key()
    assert [first.get("/api/v1/sensors").status_code for _ in range(3)] == [200, 200, 429]
    assert second.get("/api/v1/sensors").status_code == 200
    assert cache.get(f"throttle_key_key:{first.key.prefix}") is not None

"""The client address behind TRUSTED_PROXY_COUNT proxies: what the token endpoint's throttle and the sign-in
lockout count by. A direct client cannot pick its identity by writing X-Forwarded-For."""

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.test import APIClient

from smartmaint.client_address import client_address

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token"
LB = "10.0.0.254"  # the load balancer, the app's TCP peer when there is one


@pytest.fixture
def low_rates(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "3/min", "key": "3/min"}}


def ask_token(remote, forwarded=None, body=None):
    headers = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    # An empty body is a 400 before any password is checked: it spends throttle budget, not lockout failures.
    return APIClient().post(TOKEN, body or {}, format="json", **headers)


def test_by_default_a_spoofed_forwarded_for_does_not_buy_a_fresh_budget(low_rates):
    statuses = [ask_token("192.0.2.10", forwarded=f"198.51.100.{n}").status_code for n in range(5)]
    assert statuses == [400, 400, 400, 429, 429]
    assert cache.get("throttle_user_addr:192.0.2.10") is not None
    assert ask_token("192.0.2.11").status_code == 400  # another direct client has its own budget


def test_behind_one_proxy_the_right_most_address_is_the_client(low_rates, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    # Whatever the client wrote before the proxy's entry does not matter.
    statuses = [ask_token(LB, forwarded=f"spoof-{n}, 203.0.113.7").status_code for n in range(4)]
    assert statuses == [400, 400, 400, 429]
    assert cache.get("throttle_user_addr:203.0.113.7") is not None
    # Another client through the same load balancer is not throttled with it.
    assert ask_token(LB, forwarded="203.0.113.7, 203.0.113.8").status_code == 400


def test_behind_two_proxies_the_second_from_the_right_is_the_client(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    request = APIClient().get("/healthz").wsgi_request
    request.META.update(REMOTE_ADDR=LB, HTTP_X_FORWARDED_FOR="evil, 203.0.113.9, 10.0.0.3")
    assert client_address(request) == "203.0.113.9"
    request.META.update(HTTP_X_FORWARDED_FOR="")
    assert client_address(request) == LB


def test_the_lockout_counts_the_same_address(settings):
    User.objects.create_user("otto", password="Corr3ct-Horse-Battery")
    limit = settings.AXES_FAILURE_LIMIT
    # A direct client varying X-Forwarded-For is still one address, and gets locked out as one.
    for n in range(limit):
        ask_token("192.0.2.20", forwarded=f"198.51.100.{n}", body={"username": f"guess-{n}", "password": "x"})
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"192.0.2.20"}
    right = {"username": "otto", "password": "Corr3ct-Horse-Battery"}
    assert ask_token("192.0.2.20", forwarded="198.51.100.99", body=right).status_code == 429

    # Behind a load balancer, the client it reports is locked out, not the load balancer itself.
    AccessAttempt.objects.all().delete()
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(limit):
        ask_token(LB, forwarded=f"spoof-{n}, 203.0.113.30", body={"username": f"guess-{n}", "password": "x"})
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.30"}
    assert ask_token(LB, forwarded="anything, 203.0.113.30", body=right).status_code == 429
    assert ask_token(LB, forwarded="203.0.113.31", body=right).status_code == 200

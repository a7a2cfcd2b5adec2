"""Brute-force protection (django-axes): repeated failed sign-ins lock out the account and the address,
on the JWT token endpoint and the admin login alike."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from tests.admin.conftest import PASSWORD

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token"
LIMIT = 5  # LOGIN_FAILURE_LIMIT's default


@pytest.fixture(autouse=True)
def users(db):
    User.objects.create_user("maria", password=PASSWORD, is_staff=True)
    User.objects.create_user("otto", password=PASSWORD, is_staff=True)


def token(username, password, address):
    return APIClient().post(TOKEN, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_after_the_failure_limit_the_right_password_is_refused_with_429(settings):
    assert settings.AXES_FAILURE_LIMIT == LIMIT
    statuses = [token("maria", f"wrong-{n}", "10.0.0.1").status_code for n in range(LIMIT)]
    assert statuses == [401] * (LIMIT - 1) + [429]

    refused = token("maria", PASSWORD, "10.0.0.1")
    assert refused.status_code == 429
    body = refused.json()
    assert body["type"] == "client_error"
    assert body["errors"][0]["code"] == "locked_out"
    assert "try again in 15 minutes" in body["errors"][0]["detail"]
    assert int(refused["Retry-After"]) == 15 * 60
    assert "access" not in body

    # Another account from another address signs in as usual.
    assert token("otto", PASSWORD, "10.0.0.2").status_code == 200


def test_the_account_is_locked_whatever_address_the_guesses_come_from():
    for n in range(LIMIT):
        token("maria", "wrong", f"10.0.1.{n}")
    assert token("maria", PASSWORD, "10.0.2.1").status_code == 429
    assert token("otto", PASSWORD, "10.0.2.1").status_code == 200


def test_the_address_is_locked_whatever_accounts_it_tries():
    for n in range(LIMIT):
        token(f"guess-{n}", "wrong", "10.0.3.1")
    assert token("otto", PASSWORD, "10.0.3.1").status_code == 429
    assert token("otto", PASSWORD, "10.0.3.2").status_code == 200


def test_the_limit_is_a_setting(settings):
    settings.AXES_FAILURE_LIMIT = 2
    assert [token("maria", "wrong", "10.0.4.1").status_code for _ in range(2)] == [401, 429]


def test_a_locked_out_client_costs_no_password_hashing(monkeypatch):
    for _ in range(LIMIT):
        token("maria", "wrong", "10.0.5.1")
    checked = []
    monkeypatch.setattr(User, "check_password", lambda self, raw: checked.append(raw) or True)
    assert token("maria", PASSWORD, "10.0.5.1").status_code == 429
    assert checked == []


def admin_login(username, password, address):
    client = Client(REMOTE_ADDR=address)
    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": password})
    return client, response


def test_admin_login_locks_out_with_a_plain_page():
    for _ in range(LIMIT - 1):
        _, response = admin_login("maria", "wrong", "10.0.6.1")
        assert response.status_code == 200  # the form again, with its error
    _, response = admin_login("maria", PASSWORD, "10.0.6.1")
    assert response.status_code == 302  # below the limit the right password still works

    for _ in range(LIMIT):
        _, response = admin_login("otto", "wrong", "10.0.7.1")
    _, refused = admin_login("otto", PASSWORD, "10.0.7.1")
    assert refused.status_code == 429
    page = refused.content.decode()
    assert "Too many failed sign-ins" in page and "15 minutes" in page
    assert 'name="password"' not in page
    client, response = admin_login("maria", PASSWORD, "10.0.7.2")
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_admin_and_api_failures_count_together():
    for _ in range(LIMIT - 1):
        admin_login("maria", "wrong", "10.0.8.1")
    assert token("maria", "wrong", "10.0.8.2").status_code == 429
    assert token("maria", PASSWORD, "10.0.8.3").status_code == 429

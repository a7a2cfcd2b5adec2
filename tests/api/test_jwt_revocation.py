"""Refresh tokens work once (rotation), die at logout, and every token dies when the password changes."""

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from smartmaint.services import user_tokens_revoke

pytestmark = pytest.mark.django_db

PASSWORD = "Str0ng-pass-phrase"
NEW_PASSWORD = "An0ther-str0ng-phrase"


@pytest.fixture
def maria(db):
    return User.objects.create_user("maria", password=PASSWORD, is_staff=True, is_superuser=True)


def obtain(username="maria", password=PASSWORD) -> dict:
    response = APIClient().post("/api/v1/auth/token", {"username": username, "password": password})
    assert response.status_code == 200, response.content
    return response.json()


def refresh(token: str):
    return APIClient().post("/api/v1/auth/token/refresh", {"refresh": token})


def use(access: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get("/api/v1/sensors").status_code


def test_a_refresh_token_works_once_and_its_reuse_is_refused(maria):
    first = obtain()["refresh"]
    rotated = refresh(first)
    assert rotated.status_code == 200
    second = rotated.json()["refresh"]
    assert second != first and use(rotated.json()["access"]) == 200

    reused = refresh(first)
    assert reused.status_code == 401
    assert reused.json()["errors"][0]["code"] == "token_not_valid"
    assert refresh(second).status_code == 200  # the rotated one works (once)


def test_logout_blacklists_the_refresh_token(maria):
    tokens = obtain()
    logout = APIClient().post("/api/v1/auth/token/blacklist", {"refresh": tokens["refresh"]})
    assert logout.status_code == 200
    assert refresh(tokens["refresh"]).status_code == 401
    verify = APIClient().post("/api/v1/auth/token/verify", {"token": tokens["refresh"]})
    assert verify.status_code in (400, 401)
    # Another session of the same user is not logged out with it.
    assert refresh(obtain()["refresh"]).status_code == 200


def test_a_password_change_ends_every_session(maria):
    one, two = obtain(), obtain()
    maria.set_password(NEW_PASSWORD)
    maria.save()

    for tokens in (one, two):
        assert use(tokens["access"]) == 401
        refused = refresh(tokens["refresh"])
        assert refused.status_code == 401
    assert BlacklistedToken.objects.filter(token__user=maria).count() == 2
    fresh = obtain(password=NEW_PASSWORD)
    assert use(fresh["access"]) == 200 and refresh(fresh["refresh"]).status_code == 200


def test_a_refresh_token_is_refused_after_a_password_change_even_if_it_was_not_blacklisted(maria):
    """The tie to the password hash alone refuses it: tokens not on record (or a blacklist emptied by
    flushexpiredtokens) cannot outlive a password change."""
    tokens = obtain()
    maria.set_password(NEW_PASSWORD)
    User.objects.filter(pk=maria.pk).update(password=maria.password)  # a bulk update: no save(), no hook
    assert not BlacklistedToken.objects.exists()
    refused = refresh(tokens["refresh"])
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"] == "password_changed"
    assert use(tokens["access"]) == 401


def test_the_admins_password_change_form_ends_api_sessions(maria):
    tokens = obtain()
    admin = Client()
    admin.force_login(maria)
    response = admin.post(
        "/admin/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert refresh(tokens["refresh"]).status_code == 401
    assert use(tokens["access"]) == 401


def test_changepassword_command_ends_api_sessions(maria, monkeypatch):
    tokens = obtain()
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW_PASSWORD)
    call_command("changepassword", "maria")
    assert refresh(tokens["refresh"]).status_code == 401


def test_revoking_a_users_tokens_leaves_other_users_alone(maria):
    User.objects.create_user("otto", password=PASSWORD)
    obtain(), obtain()
    ottos = obtain("otto")
    assert user_tokens_revoke(user=maria) == 2
    assert user_tokens_revoke(user=maria) == 0  # already revoked
    assert refresh(ottos["refresh"]).status_code == 200
    assert OutstandingToken.objects.filter(user=maria).count() == 2

"""`manage.py ensure_admin`: the first login of a fresh install."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.http import HttpRequest

pytestmark = pytest.mark.django_db


def test_creates_a_superuser_with_a_generated_password_printed_once(client, capsys):
    call_command("ensure_admin")
    out = capsys.readouterr().out
    password = re.search(r"password: (\S+)", out).group(1)
    assert get_user_model().objects.get(username="admin").is_superuser
    # django-axes (first authentication backend) needs the request it counts failures against.
    assert client.login(request=HttpRequest(), username="admin", password=password)
    assert client.get("/admin/").status_code == 200

    call_command("ensure_admin")
    again = capsys.readouterr().out
    assert "already exists" in again
    assert password not in again
    assert get_user_model().objects.count() == 1


def test_password_from_the_environment_is_used_and_not_printed(settings, capsys, client):
    settings.BOOTSTRAP_ADMIN = {"username": "ops", "email": "ops@example.com", "password": "Corr3ct-Horse-Battery"}
    call_command("ensure_admin")
    out = capsys.readouterr().out
    assert "Corr3ct-Horse-Battery" not in out
    assert client.login(request=HttpRequest(), username="ops", password="Corr3ct-Horse-Battery")


def test_refuses_to_take_over_an_ordinary_user_of_the_same_name():
    get_user_model().objects.create_user(username="admin", password="x")
    with pytest.raises(CommandError, match="not a superuser"):
        call_command("ensure_admin")


def sign_in(client, username: str, password: str) -> int:
    return client.post("/admin/login/", {"username": username, "password": password}).status_code


def test_reset_password_gives_a_locked_out_admin_a_new_printed_password(client, settings, capsys):
    settings.BOOTSTRAP_ADMIN = {"username": "admin", "email": "", "password": "Original-Pw-4711"}
    call_command("ensure_admin")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "admin", "forgotten")
    # Locked out: even the right password is refused now.
    assert sign_in(client, "admin", "Original-Pw-4711") == 429
    capsys.readouterr()

    settings.BOOTSTRAP_ADMIN = {"username": "admin", "email": "", "password": ""}
    call_command("ensure_admin", "--reset-password")
    out = capsys.readouterr().out
    password = re.search(r"password: (\S+)", out).group(1)
    assert "lockout lifted" in out
    assert sign_in(client, "admin", "Original-Pw-4711") == 200  # the login form again: refused
    assert sign_in(client, "admin", password) == 302  # signed in, on to the console
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


def test_reset_password_uses_the_environment_password_without_printing_it(client, settings, capsys):
    call_command("ensure_admin")
    settings.BOOTSTRAP_ADMIN = {"username": "admin", "email": "", "password": "Corr3ct-Horse-Battery"}
    call_command("ensure_admin", "--reset-password")
    assert "Corr3ct-Horse-Battery" not in capsys.readouterr().out
    assert sign_in(client, "admin", "Corr3ct-Horse-Battery") == 302


def test_reset_password_of_an_unknown_or_ordinary_user_is_refused_with_the_superusers_named():
    call_command("ensure_admin")
    get_user_model().objects.create_user(username="clerk", password="x")
    with pytest.raises(CommandError, match=r"No superuser named 'clerk' \(superusers: admin\).*changepassword"):
        call_command("ensure_admin", "--reset-password", "--username", "clerk")
    with pytest.raises(CommandError, match="No superuser named 'nobody'"):
        call_command("ensure_admin", "--reset-password", "--username", "nobody")


def test_nothing_to_do_names_the_way_back_from_a_lost_password(capsys):
    call_command("ensure_admin")
    capsys.readouterr()
    call_command("ensure_admin")
    assert "--reset-password" in capsys.readouterr().out

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

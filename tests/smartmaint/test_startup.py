"""Startup in production mode, deploy checks and mail defaults, each in a fresh process."""

import pytest

from tests.conftest import run_manage

PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "k8Zq2-vW9xPp4Lr7Tn1Ys6Hd3Jf0Gb5Mc8Nq2Vw9Xe4Ra7Ut1Io6Pl3Ks0Dh5Fg",
    "DJANGO_ALLOWED_HOSTS": "maint.example.com",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
}


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"])
def test_production_names_the_missing_variable_in_one_line(missing, tmp_path):
    env = {**PRODUCTION, "DJANGO_VAR_DIR": str(tmp_path)}
    del env[missing]
    result = run_manage("check", env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert missing in lines[0]
    assert "Traceback" not in result.stderr


def test_production_with_both_missing_names_both(tmp_path):
    result = run_manage("check", env={"DJANGO_DEBUG": "false", "DJANGO_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr and "DJANGO_ALLOWED_HOSTS" in result.stderr


def test_check_deploy_passes_in_a_production_like_environment(tmp_path):
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION, "DJANGO_VAR_DIR": str(tmp_path)}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_debug_mode(tmp_path):
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env={"DJANGO_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0


def _setting(name: str, env: dict) -> str:
    result = run_manage("shell", "-v", "0", "-c", f"from django.conf import settings; print(settings.{name})", env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_no_mail_host_means_console_backend(tmp_path):
    assert (
        _setting("EMAIL_BACKEND", {"DJANGO_VAR_DIR": str(tmp_path)}) == "django.core.mail.backends.console.EmailBackend"
    )


def test_mail_host_alone_selects_smtp_with_defaults(tmp_path):
    env = {"DJANGO_VAR_DIR": str(tmp_path), "EMAIL_SMTP_HOST": "smtp.example.com"}
    assert _setting("EMAIL_BACKEND", env) == "django.core.mail.backends.smtp.EmailBackend"
    assert _setting("EMAIL_PORT", env) == "587"


def test_invalid_timescaledb_mode_is_one_line(tmp_path):
    result = run_manage("check", env={"DJANGO_VAR_DIR": str(tmp_path), "TIMESCALEDB": "sometimes"})
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert "TIMESCALEDB must be one of auto, required, off" in result.stderr


@pytest.mark.parametrize("command", ["doctor", "migrate"])
def test_unencoded_password_is_one_line_asking_for_percent_encoding(command, tmp_path):
    env = {"DJANGO_VAR_DIR": str(tmp_path), "DATABASE_URL": "postgresql://app:p@ss/word#1@127.0.0.1:5432/x"}
    result = run_manage(command, env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "DATABASE_URL must be percent-encoded" in line

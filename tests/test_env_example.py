"""`.env.example` documents every variable the app, its images and docker-compose.yml read, and nothing else.

Read means: ``env.<cast>("NAME")`` in settings.py; ``${NAME...}`` (or ``$NAME``) in docker-compose.yml;
``${NAME}``/``$NAME`` and ``os.environ``/``os.getenv`` reads in the Dockerfiles and in docker/ (entrypoints,
the gunicorn config, the health check, the bucket one-shot). Documented means a line ``NAME=value`` (set,
to its default) or ``# NAME=...`` (left unset) in .env.example.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Read from the environment by libraries and tools, not by our code.
LIBRARY_VARIABLES = {
    # boto3 and MLflow
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    # docker compose itself
    "COMPOSE_PROFILES",
}
DOCUMENTED = re.compile(r"^(# )?([A-Z][A-Z0-9_]+)=(.*)$", re.MULTILINE)
SHELL_REFERENCE = re.compile(r"(?<!\$)\$\{?([A-Z][A-Z0-9_]*)")
PYTHON_READ = re.compile(r"""(?:os\.environ\.get|os\.getenv|os\.environ\[|_int)\(?\s*["']([A-Z][A-Z0-9_]+)["']""")
DOCKER_FILES = sorted(
    [ROOT / "Dockerfile"]
    + [path for path in (ROOT / "docker").rglob("*") if path.is_file() and path.suffix in {"", ".sh", ".py"}]
)


def documented() -> dict[str, str | None]:
    """Every documented variable: its example value, or None when the line is commented out (unset)."""
    found = {}
    for commented, name, value in DOCUMENTED.findall((ROOT / ".env.example").read_text()):
        assert name not in found, f"{name} documented twice"
        found[name] = None if commented else value
    return found


def read_by_settings() -> set[str]:
    return set(re.findall(r"env\.\w+\(\s*\"([A-Z][A-Z0-9_]+)\"", (ROOT / "smartmaint" / "settings.py").read_text()))


def read_by_compose() -> set[str]:
    return set(SHELL_REFERENCE.findall((ROOT / "docker-compose.yml").read_text()))


def read_by_images() -> dict[str, set[str]]:
    """Variables each Dockerfile or script under docker/ reads, less those a Dockerfile sets itself."""
    reads = {}
    for path in DOCKER_FILES:
        text = path.read_text()
        names = set(SHELL_REFERENCE.findall(text)) | set(PYTHON_READ.findall(text))
        if path.name == "Dockerfile":
            for line in re.findall(r"^(?:ENV|ARG)\s+(.*(?:\\\n.*)*)", text, re.MULTILINE):
                names -= set(re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", line))
        reads[str(path.relative_to(ROOT))] = names
    return reads


def test_every_source_is_scanned():
    assert read_by_settings(), "no env reads found: the pattern no longer matches settings.py"
    assert read_by_compose(), "no ${...} found in docker-compose.yml"
    images = read_by_images()
    assert "docker/mlflow/entrypoint.sh" in images and "docker/gunicorn.conf.py" in images
    assert {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACT_ROOT"} <= images["docker/mlflow/entrypoint.sh"]
    assert {"GUNICORN_WORKERS", "GUNICORN_TIMEOUT", "PORT"} <= images["docker/gunicorn.conf.py"]


def test_env_example_lists_exactly_the_variables_read():
    read = read_by_settings() | read_by_compose() | set().union(*read_by_images().values())
    names = set(documented())
    assert read - names == set(), "read but missing from .env.example"
    assert names - read - LIBRARY_VARIABLES == set(), "documented in .env.example but never read"
    assert names >= LIBRARY_VARIABLES


def test_env_example_documents_what_the_deployment_needs():
    names = set(documented())
    needed = {
        "DJANGO_SECRET_KEY",
        "DJANGO_DEBUG",
        "DJANGO_ALLOWED_HOSTS",
        "DJANGO_CSRF_TRUSTED_ORIGINS",
        "DATABASE_URL",
        "TIMESCALEDB",
        "MIGRATIONS_TABLE",
        "REDIS_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_STORAGE_BUCKET_NAME",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_BACKEND_STORE_URI",
        "MLFLOW_ARTIFACT_ROOT",
        "JWT_SECRET",
        "JWT_ACCESS_MINUTES",
        "JWT_REFRESH_DAYS",
        "EMAIL_SMTP_HOST",
        "EMAIL_SMTP_PORT",
        "GUNICORN_WORKERS",
        "GUNICORN_TIMEOUT",
    }
    assert needed - names == set()
    assert "sslmode=require" in (ROOT / ".env.example").read_text()


def test_env_example_sets_no_secret():
    values = documented()
    for name in (
        "DJANGO_SECRET_KEY",
        "JWT_SECRET",
        "POSTGRES_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "EMAIL_SMTP_PASSWORD",
    ):
        assert values[name] is None, f"{name}: leave it commented out, never a real-looking value"
    assert values["DJANGO_DEBUG"] == "false", "the example is production-safe"


SETTINGS_DUMP = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartmaint.settings")
import django
django.setup()
from django.conf import settings
print(json.dumps({name: repr(getattr(settings, name)) for name in dir(settings) if name.isupper()}))
"""


def _settings(env: dict[str, str]) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if key not in documented()}
    result = subprocess.run(
        [sys.executable, "-c", SETTINGS_DUMP],
        cwd=ROOT,
        env={**base, "PYTHONDONTWRITEBYTECODE": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("debug", ["false", "true"])
def test_a_copy_of_env_example_changes_no_default(debug, tmp_path):
    """`cp .env.example .env` (or compose's env_file) gives the same settings as no variable at all.

    Guards against lines such as ``DJANGO_SECURE_HSTS_SECONDS=`` (a crash), ``DJANGO_SECURE_SSL_REDIRECT=``
    (false in production) or ``DJANGO_STATIC_ROOT=`` (the working directory): unset values are commented out.
    """
    fixed = {
        "DJANGO_DEBUG": debug,
        "DJANGO_SECRET_KEY": "k8Zq2-vW9xPp4Lr7Tn1Ys6Hd3Jf0Gb5Mc8Nq2Vw9Xe4Ra7Ut1Io6Pl3Ks0Dh5Fg",
        "DJANGO_ALLOWED_HOSTS": "maint.example.com",
        "DJANGO_VAR_DIR": str(tmp_path),
    }
    example = {name: value for name, value in documented().items() if value is not None}
    with_example = _settings({**example, **fixed})
    without = _settings(fixed)
    changed = {name: (without[name], with_example[name]) for name in without if without[name] != with_example[name]}
    assert changed == {}

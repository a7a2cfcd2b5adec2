"""Shared fixtures. The suite runs on real services chosen by the environment (see README, "Tests")."""

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.factories import AssetFactory, ReadingFactory, SensorFactory
from tests.mlflow_services import mlflow_settings, mlflow_url, s3_endpoint  # noqa: F401  (session fixtures)

ROOT = Path(__file__).resolve().parent.parent

# The TimescaleDB suite needs its own server and runs in its own pytest
# invocation (see Makefile); it is collected only there.
if os.environ.get("TIMESCALEDB") != "required":
    collect_ignore = ["timescale"]


def server_dsn(dbname: str) -> str:
    """A libpq DSN for ``dbname`` on the PostgreSQL server the suite runs against."""
    db = settings.DATABASES["default"]
    assert db["ENGINE"] == "smartmaint.db_backend", "these tests need DATABASE_URL to point at PostgreSQL"
    return psycopg.conninfo.make_conninfo(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=dbname,
    )


def server_url(dbname: str) -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgresql://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{dbname}"


@contextmanager
def scratch_database():
    """A throwaway database on the same server, for commands that must run from an empty schema."""
    name = f"smartmaint_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(server_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scratch_db():
    with scratch_database() as name:
        yield name


def run_manage(*args: str, env: dict[str, str] | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run ``manage.py`` in a fresh process with ``env`` layered over a clean development environment."""
    # MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI: the MLflow library exports them into this process's environment
    # when a test points it at a server (mlflow.set_tracking_uri), so they would leak into the subprocess.
    leaked = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_")) and key not in leaked
    }
    base.update({"DJANGO_DEBUG": "true", "PYTHONDONTWRITEBYTECODE": "1"})
    base.pop("TIMESCALEDB", None)
    base.pop("MIGRATIONS_TABLE", None)
    base.update(env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=300,
        check=check,
    )


@pytest.fixture
def asset(db):
    return AssetFactory()


@pytest.fixture
def sensor(db):
    return SensorFactory()


__all__ = ["AssetFactory", "ReadingFactory", "SensorFactory", "run_manage", "scratch_database", "server_url"]

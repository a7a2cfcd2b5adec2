"""The cloud story of the system this replaces, replayed as an operator would, with no manual step: MLflow and the
app in one database (MLflow's tables in `public` too), migrate, seed, train; the app's tables wiped; migrate, seed
and train again. Doctor explains each state on the way, and MLflow's tables and models are never touched."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.conftest import run_manage, server_dsn, server_url
from tests.mlflow_services import BUCKET
from tests.services import S3_ENV, mlflow_server

# Subprocesses and a real MLflow server: no database fixture of the test's own is used.
pytestmark = pytest.mark.django_db(transaction=True)


def _tables(dbname: str) -> set[str]:
    with psycopg.connect(server_dsn(dbname)) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


def _doctor(env: dict) -> dict[str, dict]:
    result = run_manage("doctor", "--json", "--timeout", "120", env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return {row["check"]: row for row in json.loads(result.stdout)}


def _ok(env: dict, *args: str) -> str:
    result = run_manage(*args, env=env)
    assert result.returncode == 0, f"{args}: {result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr
    return result.stdout


def test_mlflow_and_the_app_in_one_database_through_wipe_and_rebuild(scratch_db, s3_endpoint, tmp_path):
    backend = server_url(scratch_db).replace("postgresql://", "postgresql+psycopg://", 1)
    (tmp_path / "mlflow").mkdir()
    with mlflow_server(
        tmp_path / "mlflow",
        backend_store_uri=backend,
        artifact_root=f"s3://{BUCKET}/cloud-story",
        s3_endpoint=s3_endpoint,
    ) as mlflow_url:
        mlflow_tables = _tables(scratch_db)
        assert "alembic_version" in mlflow_tables and "registered_models" in mlflow_tables
        env = {
            "DATABASE_URL": server_url(scratch_db),
            "DJANGO_VAR_DIR": str(tmp_path / "var"),
            "MLFLOW_TRACKING_URI": mlflow_url,
            "MLFLOW_MODEL_PREFIX": "cloud-story",
            "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
            **S3_ENV,
        }

        # A database holding only MLflow: doctor says to migrate, and nothing of MLflow's is in the way.
        before = _doctor(env)
        assert before["unapplied_migrations"]["status"] == "FAIL"
        assert "migrate" in before["unapplied_migrations"]["remedy"]
        assert before["table_conflicts"]["status"] == "OK", before["table_conflicts"]
        assert before["mlflow"]["status"] == "OK"

        def build() -> None:
            _ok(env, "migrate", "--no-input")
            _ok(env, "seed_data", "--sensors", "8", "--readings", "8000", "--end", "2026-03-01T00:00:00Z")
            _ok(env, "train_models", "--promote")
            after = _doctor(env)
            for check in ("database", "migrations_table", "unapplied_migrations", "ghost_migrations"):
                assert after[check]["status"] == "OK", after[check]
            for check in ("legacy_migrations_table", "table_conflicts", "reading_times", "mlflow", "champion_models"):
                assert after[check]["status"] == "OK", after[check]

        build()
        assert mlflow_tables <= _tables(scratch_db)

        # The app's tables wiped (MLflow's left, in the same schema), as the original's reset did.
        app_tables = _tables(scratch_db) - mlflow_tables
        with psycopg.connect(server_dsn(scratch_db)) as conn:
            conn.execute("DROP TABLE " + ", ".join(f'"{name}"' for name in sorted(app_tables)) + " CASCADE")
        wiped = _doctor(env)
        assert wiped["unapplied_migrations"]["status"] == "FAIL"
        assert "migrate" in wiped["unapplied_migrations"]["remedy"]
        # The models survived in MLflow; doctor skips what needs the app's tables or says to migrate.
        assert wiped["mlflow"]["status"] == "OK"

        build()
        assert mlflow_tables <= _tables(scratch_db)
        with psycopg.connect(server_dsn(scratch_db)) as conn:
            versions = conn.execute("SELECT count(*) FROM model_versions").fetchone()[0]
        assert versions >= 2  # trained before and after the wipe, in the one registry

"""`manage.py doctor` against the real services: all OK, and each dependency failing on its own."""

import json
import socket
import time
from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from smartmaint.environment import cache_config
from tests.conftest import run_manage, server_dsn, server_url
from tests.mlflow_services import BUCKET
from tests.services import S3_ENV, free_port
from tests.workers import (
    QUEUES,
    beat_sends_due_jobs,
    celery_worker,
    jobs_finish,
    purge_queues,
    sent_jobs,
    worker_env,
)


def doctor(*args: str) -> tuple[dict[str, dict], int]:
    """Run the doctor in-process with --json: its results by check name, and its exit code.

    A generous --timeout unless the test sets one: what passes must not depend on how busy the machine is.
    """
    out = StringIO()
    if "--timeout" not in args:
        args = ("--timeout", "120", *args)
    try:
        call_command("doctor", "--json", *args, stdout=out)
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return {row["check"]: row for row in json.loads(out.getvalue())}, code


def statuses(results: dict[str, dict]) -> dict[str, str]:
    return {check: row["status"] for check, row in results.items()}


@pytest.fixture
def s3_settings(settings, s3_endpoint, monkeypatch):
    settings.AWS_STORAGE_BUCKET_NAME = BUCKET
    settings.AWS_S3_ENDPOINT_URL = s3_endpoint
    settings.AWS_S3_REGION_NAME = S3_ENV["AWS_DEFAULT_REGION"]
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    return settings


# Committed data: the worker and beat (processes of their own) read and write the same tables.
@pytest.mark.django_db(transaction=True)
def test_every_check_passes_on_postgres_redis_s3_mlflow_with_champions(mlflow_settings, s3_settings, tmp_path):
    call_command("seed_data", "--sensors", "4", "--readings", "2000", "--end", "2026-03-01T00:00:00Z", "--quiet")
    call_command("train_models", "--promote", stdout=StringIO())
    mlflow_settings.EMAIL_HOST = "localhost"

    # Generous, as the doctor's --timeout below: the worker answers while it runs the jobs beat sent.
    mlflow_settings.WORKER_PING_TIMEOUT = 20

    purge_queues()
    with celery_worker(",".join(QUEUES), env=worker_env(), log_dir=tmp_path):
        # The jobs sent finish before the doctor looks at them: one still running once three of its periods have
        # passed since the jobs were made (the test's start; train_models is slow on a busy machine) is "late".
        jobs_finish(sent_jobs(beat_sends_due_jobs(tmp_path, env=worker_env())))
        results, code = doctor()

    # On failure, the checks that did not pass, whole (the full report's repr is cut before them).
    assert code == 0, {name: result for name, result in results.items() if result["status"] == "FAIL"}
    assert statuses(results) == {
        "database": "OK",
        "timescaledb": "OK",
        "hypertable": "SKIP",
        "migrations_table": "OK",
        "table_conflicts": "OK",
        "migrate_privileges": "OK",
        "unapplied_migrations": "OK",
        "ghost_migrations": "OK",
        "legacy_migrations_table": "OK",
        "reading_times": "OK",
        "redis": "OK",
        "s3": "OK",
        "mlflow": "OK",
        "champion_models": "OK",
        "smtp": "OK",
        "workers": "OK",
        "beat": "OK",
        "jobs": "OK",
    }
    assert results["database"]["detail"].startswith("PostgreSQL ")
    assert " ms" in results["database"]["detail"]
    assert results["timescaledb"]["detail"].startswith("not installed, plain PostgreSQL tables (TIMESCALEDB=auto)")
    assert "Redis " in results["redis"]["detail"]
    assert f"s3://{BUCKET}" in results["s3"]["detail"]
    assert "put, get and delete" in results["s3"]["detail"]
    assert "champion for every type with active sensors" in results["champion_models"]["detail"]
    assert all(row["remedy"] is None for row in results.values())


@pytest.mark.django_db
def test_redis_down_fails_with_a_remedy_and_a_non_zero_exit(settings):
    settings.CACHES = {"default": cache_config(f"redis://127.0.0.1:{free_port()}/0", key_prefix="doctor")}

    results, code = doctor()

    assert code == 1
    assert results["redis"]["status"] == "FAIL"
    assert "Connection refused" in results["redis"]["detail"] or "Error" in results["redis"]["detail"]
    assert "REDIS_URL" in results["redis"]["remedy"]
    assert results["database"]["status"] == "OK"


@pytest.mark.django_db
def test_a_service_that_never_answers_fails_within_the_timeout(settings):
    # Accepts connections (the backlog) but never answers: only the doctor's own deadline ends the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        config = cache_config(f"redis://127.0.0.1:{port}/0", key_prefix="doctor")
        config["OPTIONS"].update({"SOCKET_CONNECT_TIMEOUT": 60, "SOCKET_TIMEOUT": 60})
        settings.CACHES = {"default": config}
        start = time.monotonic()

        results, code = doctor("--timeout", "1")

        assert time.monotonic() - start < 10
    assert code == 1
    assert results["redis"]["status"] == "FAIL"
    assert "no answer within 1 s" in results["redis"]["detail"]


@pytest.mark.django_db
def test_a_bucket_that_does_not_exist_fails(s3_settings):
    s3_settings.AWS_STORAGE_BUCKET_NAME = "no-such-bucket-smartmaint"

    results, code = doctor()

    assert code == 1
    assert results["s3"]["status"] == "FAIL"
    assert "NoSuchBucket" in results["s3"]["detail"]
    assert results["s3"]["detail"].startswith("s3://no-such-bucket-smartmaint at http://127.0.0.1:")
    assert "AWS_STORAGE_BUCKET_NAME" in results["s3"]["remedy"]


@pytest.mark.django_db
def test_no_bucket_is_skipped_and_says_so(settings):
    settings.AWS_STORAGE_BUCKET_NAME = ""
    results, _ = doctor()
    assert results["s3"] == {
        "check": "s3",
        "status": "SKIP",
        "detail": "AWS_STORAGE_BUCKET_NAME not set: no object storage configured",
        "remedy": None,
    }


@pytest.mark.django_db
def test_mlflow_unreachable_fails_and_the_champions_are_not_checked(settings):
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"
    settings.MLFLOW_REGISTRY_URI = ""

    results, code = doctor()

    assert code == 1
    assert results["mlflow"]["status"] == "FAIL"
    assert results["mlflow"]["detail"].startswith("http://127.0.0.1:9: ")
    assert "MLFLOW_TRACKING_URI" in results["mlflow"]["remedy"]
    assert results["champion_models"]["status"] == "SKIP"


@pytest.mark.django_db
def test_a_sensor_type_without_a_champion_fails_naming_it(mlflow_settings, sensor):
    # A prefix no model is registered under: whatever other tests trained, this type has no champion.
    mlflow_settings.MLFLOW_MODEL_PREFIX = "doctor-none"

    results, code = doctor()

    assert code == 1
    assert results["mlflow"]["status"] == "OK"
    assert results["champion_models"]["status"] == "FAIL"
    assert results["champion_models"]["detail"].startswith(f"no champion for {sensor.sensor_type} (1 of 1 ")
    assert results["champion_models"]["remedy"].startswith(f"Run manage.py train_models --types {sensor.sensor_type}")


@pytest.mark.django_db
def test_timescaledb_required_without_the_extension_fails(settings):
    settings.TIMESCALEDB = "required"

    results, code = doctor()

    assert code == 1
    assert results["timescaledb"]["status"] == "FAIL"
    assert results["timescaledb"]["detail"].startswith("not installed in this database (TIMESCALEDB=required)")
    assert "shared_preload_libraries" in results["timescaledb"]["remedy"]
    assert "hypertable" not in results


@pytest.mark.django_db
def test_an_unresolvable_smtp_host_fails(settings):
    settings.EMAIL_HOST = "mail.smartmaint.invalid"
    results, code = doctor()
    assert code == 1
    assert results["smtp"]["status"] == "FAIL"
    assert "EMAIL_SMTP_HOST" in results["smtp"]["remedy"]


@pytest.mark.django_db
def test_a_django_migrations_table_of_another_application_is_not_ours_to_report():
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE django_migrations (id serial PRIMARY KEY, app varchar(255), name varchar(255), "
            "applied timestamptz)"
        )
        cursor.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('auth', '0001_initial', now())")
    results, _ = doctor()
    assert results["legacy_migrations_table"]["status"] == "OK"
    assert "records none of this project's apps" in results["legacy_migrations_table"]["detail"]


def _lines(stdout: str) -> dict[str, str]:
    """Status by check name from the human-readable output (remedy lines start with spaces)."""
    found = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in {"OK", "FAIL", "SKIP"}:
            found[parts[1]] = parts[0]
    return found


def test_ghost_records_and_a_leftover_django_migrations_fail_in_lines_and_json(scratch_db, tmp_path):
    env = {
        "DATABASE_URL": server_url(scratch_db),
        "DJANGO_VAR_DIR": str(tmp_path),
        # The embedded default, whatever MLflow server other tests exported to the environment.
        "MLFLOW_TRACKING_URI": "",
        "MLFLOW_REGISTRY_URI": "",
    }
    migrated = run_manage("migrate", "--no-input", env=env)
    assert migrated.returncode == 0, migrated.stderr
    with psycopg.connect(server_dsn(scratch_db)) as conn:
        conn.execute("INSERT INTO smartmaint_migrations (app, name, applied) VALUES ('sensors', '0099_removed', now())")
        # What an older release (plain django_migrations) leaves behind when run against this database.
        conn.execute("CREATE TABLE django_migrations AS SELECT * FROM smartmaint_migrations")

    # migrate built the local MLflow store; a generous limit, so that a busy machine cannot fail the mlflow line.
    lines = run_manage("doctor", "--timeout", "120", env=env)
    as_json = run_manage("doctor", "--json", "--timeout", "120", env=env)

    assert lines.returncode == as_json.returncode == 1
    assert "Traceback" not in lines.stderr + as_json.stderr
    assert "ghost_migrations, legacy_migrations_table" in lines.stderr
    results = {row["check"]: row for row in json.loads(as_json.stdout)}
    assert _lines(lines.stdout) == statuses(results)
    assert results["ghost_migrations"]["status"] == "FAIL"
    assert "sensors.0099_removed" in results["ghost_migrations"]["detail"]
    assert "manage.py migrate sensors --prune" in results["ghost_migrations"]["remedy"]
    assert results["legacy_migrations_table"]["status"] == "FAIL"
    detail = results["legacy_migrations_table"]["detail"]
    assert detail.startswith("leftover django_migrations with records of maintenance, mlops, readings, sensors")
    assert "auth" not in detail
    assert "DROP TABLE django_migrations" in results["legacy_migrations_table"]["remedy"]
    assert results["migrations_table"]["status"] == "OK"
    assert results["unapplied_migrations"]["status"] == "OK"
    # run_manage drops REDIS_URL: the local-memory cache has nothing to reach; the local MLflow store (made by
    # migrate) opens.
    assert results["redis"]["status"] == "SKIP"
    assert results["mlflow"]["status"] == "OK" and "local store" in results["mlflow"]["detail"]
    assert "-> Run manage.py migrate sensors --prune" not in lines.stdout
    assert "-> Deploy the release that has them" in lines.stdout


def test_an_unreachable_database_fails_fast_and_skips_what_needs_it(tmp_path):
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none", "DJANGO_VAR_DIR": str(tmp_path)}
    result = run_manage("doctor", "--json", env=env)
    assert result.returncode == 1
    results = {row["check"]: row for row in json.loads(result.stdout)}
    assert results["database"]["status"] == "FAIL"
    assert "DATABASE_URL" in results["database"]["remedy"]
    for check in (
        "timescaledb",
        "migrations_table",
        "table_conflicts",
        "migrate_privileges",
        "unapplied_migrations",
        "ghost_migrations",
        "champion_models",
    ):
        assert results[check]["status"] == "SKIP", check

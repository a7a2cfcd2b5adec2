"""Migrations recorded in MIGRATIONS_TABLE: fresh databases, adopting django_migrations, ghosts, TIMESCALEDB modes."""

import psycopg
import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from tests.conftest import run_manage, server_dsn, server_url


def _tables(dbname: str) -> set[str]:
    with psycopg.connect(server_dsn(dbname)) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


def _query(dbname: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(server_dsn(dbname)) as conn:
        return conn.execute(sql, params).fetchall()


def _migrate(dbname: str, *args: str, **env: str):
    return run_manage("migrate", "--no-input", *args, env={"DATABASE_URL": server_url(dbname), **env})


@pytest.mark.django_db
def test_every_applied_migration_is_recorded_in_the_project_table():
    tables = set(connection.introspection.table_names())
    assert "smartmaint_migrations" in tables
    assert "django_migrations" not in tables
    with connection.cursor() as cursor:
        cursor.execute("SELECT app, name FROM smartmaint_migrations")
        recorded = set(cursor.fetchall())
    on_disk = set(MigrationLoader(connection).disk_migrations)
    assert recorded == on_disk


def test_migrate_with_an_async_driver_url_and_sslmode_works(scratch_db):
    url = server_url(scratch_db).replace("postgresql://", "postgresql+asyncpg://") + "?sslmode=disable"
    result = run_manage("migrate", "--no-input", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "readings_reading" in _tables(scratch_db)


def test_plain_postgres_is_announced_once_in_one_line(scratch_db):
    result = _migrate(scratch_db)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if "TimescaleDB" in line]
    assert notes == [
        'TimescaleDB not in use (extension "timescaledb" is not available); building plain PostgreSQL tables.'
    ]


def test_existing_django_migrations_table_is_adopted_without_reapplying(scratch_db):
    legacy = _migrate(scratch_db, MIGRATIONS_TABLE="django_migrations")
    assert legacy.returncode == 0, legacy.stderr
    assert "django_migrations" in _tables(scratch_db)
    with psycopg.connect(server_dsn(scratch_db)) as conn:
        conn.execute(
            "INSERT INTO sensors_asset (name, code, site, location, criticality, status, notes, metadata, created_at, "
            "updated_at) VALUES ('Press', 'PRESS-1', 'North', '', 'high', 'operational', '', '{}', now(), now())"
        )
    before = _query(scratch_db, "SELECT app, name, applied FROM django_migrations ORDER BY app, name")

    result = _migrate(scratch_db)

    assert result.returncode == 0, result.stderr
    assert (
        f"Adopted {len(before)} migration record(s) from django_migrations into smartmaint_migrations." in result.stdout
    )
    assert "No migrations to apply." in result.stdout
    tables = _tables(scratch_db)
    assert "django_migrations" not in tables
    assert _query(scratch_db, "SELECT app, name, applied FROM smartmaint_migrations ORDER BY app, name") == before
    assert _query(scratch_db, "SELECT code FROM sensors_asset") == [("PRESS-1",)]


def test_ghost_migration_is_reported_by_name_by_migrate_and_by_check(scratch_db):
    assert _migrate(scratch_db).returncode == 0
    with psycopg.connect(server_dsn(scratch_db)) as conn:
        conn.execute("INSERT INTO smartmaint_migrations (app, name, applied) VALUES ('sensors', '0099_removed', now())")

    result = _migrate(scratch_db)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "sensors.0099_removed" in result.stderr
    assert "manage.py migrate sensors --prune" in result.stderr

    check = run_manage("check", "--database", "default", env={"DATABASE_URL": server_url(scratch_db)})
    assert check.returncode != 0
    assert "smartmaint.E001" in check.stderr
    assert "sensors.0099_removed" in check.stderr

    pruned = _migrate(scratch_db, "sensors", "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert _migrate(scratch_db).returncode == 0
    assert run_manage("check", "--database", "default", env={"DATABASE_URL": server_url(scratch_db)}).returncode == 0


def test_timescaledb_required_on_plain_postgres_stops_with_one_clear_line(scratch_db):
    result = _migrate(scratch_db, TIMESCALEDB="required")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert 'TIMESCALEDB=required but the "timescaledb" extension cannot be created' in lines[0]
    assert "shared_preload_libraries" in lines[0]
    assert "readings_reading" not in _tables(scratch_db)

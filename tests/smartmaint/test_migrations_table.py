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


def _doctor(dbname: str) -> dict[str, dict]:
    import json

    result = run_manage("doctor", "--json", env={"DATABASE_URL": server_url(dbname)})
    assert "Traceback" not in result.stderr, result.stderr
    return {row["check"]: row for row in json.loads(result.stdout)}


LEGACY_DDL = (
    "CREATE TABLE django_migrations (id serial PRIMARY KEY, app varchar(255) NOT NULL, name varchar(255) NOT NULL, "
    "applied timestamptz NOT NULL)"
)


def test_another_applications_django_migrations_is_left_alone_with_its_records(scratch_db):
    with psycopg.connect(server_dsn(scratch_db)) as conn:
        conn.execute(LEGACY_DDL)
        conn.execute(
            "INSERT INTO django_migrations (app, name, applied) "
            "VALUES ('billing', '0001_initial', now()), ('billing', '0002_invoice_due', now())"
        )
    before = _doctor(scratch_db)

    result = _migrate(scratch_db)

    assert result.returncode == 0, result.stderr
    assert "Adopted" not in result.stdout
    assert "Left django_migrations alone: it records none of this project's apps (records of billing" in result.stdout
    assert _query(scratch_db, "SELECT app, name FROM django_migrations ORDER BY id") == [
        ("billing", "0001_initial"),
        ("billing", "0002_invoice_due"),
    ]
    assert _query(scratch_db, "SELECT count(*) FROM smartmaint_migrations WHERE app = 'billing'") == [(0,)]
    # Doctor says beforehand what migrate then does, and nothing is left to fix.
    assert before["legacy_migrations_table"]["status"] == "OK"
    assert before["legacy_migrations_table"]["detail"].endswith("migrate leaves it alone")
    assert "adopts" not in before["migrations_table"]["remedy"]
    after = _doctor(scratch_db)
    assert after["legacy_migrations_table"]["status"] == "OK"
    assert after["ghost_migrations"]["status"] == after["unapplied_migrations"]["status"] == "OK"


def test_a_shared_django_migrations_gives_up_only_our_records_and_stays(scratch_db):
    # This project once migrated under the old name, and another application records its history there too.
    assert _migrate(scratch_db, MIGRATIONS_TABLE="django_migrations").returncode == 0
    with psycopg.connect(server_dsn(scratch_db)) as conn:
        conn.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('billing', '0001_initial', now())")
    rows = _query(scratch_db, "SELECT app, name FROM django_migrations ORDER BY id")
    before = _doctor(scratch_db)

    result = _migrate(scratch_db)

    assert result.returncode == 0, result.stderr
    assert f"Adopted {len(rows) - 1} migration record(s) from django_migrations into smartmaint_migrations." in (
        result.stdout
    )
    assert "Left django_migrations in place" in result.stdout and "billing (not installed here)" in result.stdout
    assert "No migrations to apply." in result.stdout
    assert _query(scratch_db, "SELECT app, name FROM django_migrations ORDER BY id") == rows
    assert ("billing", "0001_initial") not in _query(scratch_db, "SELECT app, name FROM smartmaint_migrations")
    assert before["legacy_migrations_table"]["status"] == "FAIL"
    assert "leaves django_migrations in place" in before["legacy_migrations_table"]["remedy"]
    after = _doctor(scratch_db)
    assert after["legacy_migrations_table"]["status"] == "OK"
    assert "also holds records of billing (not installed here)" in after["legacy_migrations_table"]["detail"]


def test_records_that_do_not_match_the_tables_here_are_not_adopted(scratch_db):
    assert _migrate(scratch_db, MIGRATIONS_TABLE="django_migrations").returncode == 0
    # mlops's tables gone, and those of maintenance, which depends on mlops (its records cannot be adopted alone).
    mlops_tables = [name for name in _tables(scratch_db) if name.startswith(("mlops_", "maintenance_"))]
    with psycopg.connect(server_dsn(scratch_db)) as conn:
        for name in mlops_tables:
            conn.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')

    result = _migrate(scratch_db)

    assert result.returncode == 0, result.stderr
    assert "mlops (its tables are missing from this database: " in result.stdout
    assert "Applying mlops.0001_initial... OK" in result.stdout
    assert "Applying maintenance.0001_initial... OK" in result.stdout
    assert set(mlops_tables) <= _tables(scratch_db)
    # Nothing foreign in it: doctor says to drop the leftover once the history is whole.
    assert "django_migrations" in _tables(scratch_db)
    assert "DROP TABLE django_migrations" in _doctor(scratch_db)["legacy_migrations_table"]["remedy"]


def test_ghost_records_of_an_app_that_is_not_installed_are_named_and_prunable(scratch_db):
    assert _migrate(scratch_db).returncode == 0
    with psycopg.connect(server_dsn(scratch_db)) as conn:
        conn.execute("INSERT INTO smartmaint_migrations (app, name, applied) VALUES ('oldapp', '0001_initial', now())")

    refused = _migrate(scratch_db)
    results = _doctor(scratch_db)

    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert "oldapp.0001_initial" in refused.stderr
    assert "manage.py migrate oldapp --prune" in refused.stderr
    assert results["ghost_migrations"]["status"] == "FAIL"
    assert "oldapp.0001_initial" in results["ghost_migrations"]["detail"]
    assert "manage.py migrate oldapp --prune" in results["ghost_migrations"]["remedy"]

    pruned = _migrate(scratch_db, "oldapp", "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "Pruning oldapp.0001_initial OK" in pruned.stdout
    assert _migrate(scratch_db).returncode == 0
    assert _doctor(scratch_db)["ghost_migrations"]["status"] == "OK"

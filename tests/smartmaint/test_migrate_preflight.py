"""migrate refuses before touching anything, in one line with the remedy, where it would have failed halfway:
tables of ours already taken, a role that may not create tables; doctor reports the same with the same remedy."""

import json
import uuid

import psycopg
import pytest
from django.db import connections

from smartmaint import preflight
from tests.conftest import run_manage, server_dsn, server_url


def _tables(dbname: str) -> set[str]:
    with psycopg.connect(server_dsn(dbname)) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


def _doctor(url: str) -> dict[str, dict]:
    result = run_manage("doctor", "--json", env={"DATABASE_URL": url})
    assert "Traceback" not in result.stderr, result.stderr
    return {row["check"]: row for row in json.loads(result.stdout)}


def test_tables_of_the_replaced_system_and_one_of_our_names_made_by_hand(scratch_db):
    with psycopg.connect(server_dsn(scratch_db)) as conn:
        # The system this one replaces kept its own tables in the same database ...
        conn.execute("CREATE TABLE app_alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("CREATE TABLE sensors (id serial PRIMARY KEY, name text)")
        conn.execute("CREATE TABLE sensor_readings (sensor_id int, time timestamptz, value float8)")
        # ... and someone made one of ours by hand.
        conn.execute("CREATE TABLE sensors_sensor (id serial PRIMARY KEY)")
    before = _tables(scratch_db)
    url = server_url(scratch_db)

    refused = run_manage("migrate", "--no-input", env={"DATABASE_URL": url})
    results = _doctor(url)

    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "sensors_sensor (sensors.0001_initial)" in lines[0]
    assert "app_alembic_version" not in lines[0] and "sensor_readings" not in lines[0]
    assert "a database (or schema, via the search_path) of its own" in lines[0]
    assert _tables(scratch_db) == before  # not even the migrations table
    assert results["table_conflicts"]["status"] == "FAIL"
    assert "sensors_sensor (sensors.0001_initial)" in results["table_conflicts"]["detail"]
    assert results["table_conflicts"]["remedy"] in lines[0]
    assert "table_conflicts line says first" in results["unapplied_migrations"]["remedy"]

    # Tables of the old system whose names are not ours are no obstacle, only mentioned.
    with psycopg.connect(server_dsn(scratch_db)) as conn:
        conn.execute("DROP TABLE sensors_sensor")
    results = _doctor(url)
    assert results["table_conflicts"]["status"] == "OK"
    assert "app_alembic_version, sensor_readings, sensors" in results["table_conflicts"]["detail"]
    migrated = run_manage("migrate", "--no-input", env={"DATABASE_URL": url})
    assert migrated.returncode == 0, migrated.stderr
    assert {"sensors", "sensor_readings", "app_alembic_version", "sensors_sensor"} <= _tables(scratch_db)


@pytest.fixture
def limited_role(scratch_db):
    """A login role that may connect to the scratch database but, as PostgreSQL 15 has it, not create in public."""
    role = f"h4_limited_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield role
    finally:
        with psycopg.connect(server_dsn(scratch_db), autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(server_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _as(role: str, dbname: str) -> str:
    return server_url(dbname).replace("postgresql://postgres@", f"postgresql://{role}@", 1)


def test_a_role_without_create_on_public_is_told_what_to_grant(scratch_db, limited_role):
    url = _as(limited_role, scratch_db)
    grant = f"GRANT CREATE ON SCHEMA public TO {limited_role};"

    refused = run_manage("migrate", "--no-input", env={"DATABASE_URL": url})
    results = _doctor(url)

    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "django_migrations" not in lines[0]
    assert f"role {limited_role} may not create tables in schema public" in lines[0]
    assert grant in lines[0]
    assert results["migrate_privileges"]["status"] == "FAIL"
    assert grant in results["migrate_privileges"]["remedy"]
    assert results["migrations_table"]["remedy"].startswith("Fix what the migrate_privileges line says first")

    with psycopg.connect(server_dsn(scratch_db), autocommit=True) as conn:
        conn.execute(grant)
    migrated = run_manage("migrate", "--no-input", env={"DATABASE_URL": url})
    assert migrated.returncode == 0, migrated.stderr
    assert _doctor(url)["migrate_privileges"]["status"] == "OK"


def test_an_extension_the_role_may_not_create_is_named_with_the_grant(
    scratch_db, limited_role, settings, django_db_blocker
):
    # timescaledb is not on this server; a trusted (pgcrypto) and an untrusted (adminpack) extension stand in.
    alias = "h4_limited"
    settings.DATABASES[alias] = {
        **settings.DATABASES["default"],
        "NAME": scratch_db,
        "USER": limited_role,
        "PASSWORD": "",
        "TEST": {},
    }
    connection = connections.create_connection(alias)
    with django_db_blocker.unblock():
        try:
            trusted = preflight.extension_problem(connection, "pgcrypto")
            untrusted = preflight.extension_problem(connection, "adminpack")
            with psycopg.connect(server_dsn(scratch_db), autocommit=True) as conn:
                conn.execute(f'GRANT CREATE ON DATABASE "{scratch_db}" TO "{limited_role}"')
            granted = preflight.extension_problem(connection, "pgcrypto")
        finally:
            connection.close()

    assert trusted == (
        f"role {limited_role} may not create the pgcrypto extension in database {scratch_db}",
        f"As the database owner or a superuser: GRANT CREATE ON DATABASE {scratch_db} TO {limited_role}; "
        f"(or CREATE EXTENSION pgcrypto; as a superuser in database {scratch_db})",
    )
    assert untrusted[1] == f"As a superuser: CREATE EXTENSION adminpack; in database {scratch_db}"
    assert granted is None

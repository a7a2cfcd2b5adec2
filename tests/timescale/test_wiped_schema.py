"""A database whose schema was wiped recovers on the next `migrate` (runs last: it drops everything)."""

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = [pytest.mark.timescale, pytest.mark.django_db(transaction=True)]


def test_migrate_recreates_the_extension_and_the_hypertable_after_a_wipe():
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION IF EXISTS timescaledb CASCADE")
        cursor.execute("DROP SCHEMA public CASCADE")
        cursor.execute("CREATE SCHEMA public")
    # TimescaleDB's library stays loaded in a session whose extension was
    # dropped; as after a real wipe, the next migrate runs in a new session.
    connection.close()

    call_command("migrate", "--no-input", verbosity=0)

    with connection.cursor() as cursor:
        cursor.execute("SELECT extname FROM pg_extension WHERE extname = 'timescaledb'")
        assert cursor.fetchall() == [("timescaledb",)]
        cursor.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
        assert cursor.fetchall() == [("readings_reading",)]
        cursor.execute("SELECT count(*) FROM smartmaint_migrations")
        assert cursor.fetchone()[0] > 0

"""The TimescaleDB suite runs against one PGlite server started for the run (see server.py)."""

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.timescale


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):
    # PGlite serves a single database and cannot create another, so the suite
    # migrates the database it has (the server starts empty for every run).
    with django_db_blocker.unblock():
        assert connection.vendor == "postgresql"
        call_command("migrate", "--no-input", verbosity=0)
        assert connection.timescaledb_enabled, "the TimescaleDB suite needs a server with the extension"

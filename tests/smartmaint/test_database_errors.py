"""Database failures in manage.py commands: one line on stderr naming DATABASE_URL (password redacted), the
cause and the remedy, a non-zero exit, no traceback. Each case against a real server or a real socket."""

from __future__ import annotations

import time
from contextlib import closing

import psycopg
import pytest

from tests import outages
from tests.conftest import run_manage, server_url
from tests.outages import throwaway_postgres
from tests.services import free_port

PASSWORD = "s3cret-Pw"


def assert_one_line(result, *expected: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert PASSWORD not in lines[0]
    return lines[0]


def manage(*args: str, url: str, tmp_path, **env: str):
    return run_manage(*args, env={"DATABASE_URL": url, "DJANGO_VAR_DIR": str(tmp_path), **env})


@pytest.mark.parametrize("command", ["migrate", "seed_data", "score_readings", "check_alerts", "ensure_admin"])
def test_refused_connection_is_one_line_in_every_command(command, tmp_path):
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/fleet"
    line = assert_one_line(manage(command, url=url, tmp_path=tmp_path), "DATABASE_URL=postgresql://app:***@127.0.0.1")
    assert "connection refused" in line and "start the database server" in line


def test_unknown_host_is_one_line(tmp_path):
    url = f"postgresql://app:{PASSWORD}@no-such-host.invalid:5432/fleet"
    assert_one_line(manage("migrate", url=url, tmp_path=tmp_path), "no-such-host.invalid", "cannot be resolved")


@pytest.fixture
def silent_listener():
    """A socket that accepts connections and never answers (a firewall that swallows packets, a hung proxy)."""
    with outages.silent_listener() as silent:
        yield silent.port


def test_connect_timeout_against_a_silent_listener_is_one_line_naming_the_setting(silent_listener, tmp_path):
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{silent_listener}/fleet"
    started = time.monotonic()
    result = manage("migrate", url=url, tmp_path=tmp_path, DATABASE_CONNECT_TIMEOUT="2")
    # Generous: the point is that it ends by itself, with the timeout named.
    assert time.monotonic() - started < 120
    assert_one_line(result, "did not answer within 2 s", "DATABASE_CONNECT_TIMEOUT")


def test_sslmode_require_against_a_server_without_tls_is_one_line(tmp_path):
    url = server_url("postgres") + "?sslmode=require"
    assert_one_line(manage("migrate", url=url, tmp_path=tmp_path), "offers no TLS", "sslmode=require")


def test_missing_database_is_one_line_with_create_database(tmp_path):
    url = server_url("smartmaint_no_such_database_h5")
    assert_one_line(
        manage("migrate", url=url, tmp_path=tmp_path),
        'no database "smartmaint_no_such_database_h5"',
        "CREATE DATABASE",
    )


@pytest.fixture(scope="module")
def password_server():
    """A throwaway PostgreSQL 15+ that asks every user but postgres for a password, with a role ``app``
    that may not connect to database ``closed`` nor create anything in ``public`` of database ``open``."""
    with throwaway_postgres() as server:
        admin = {"host": "127.0.0.1", "port": server.port, "user": "postgres", "autocommit": True}
        with closing(psycopg.connect(dbname="postgres", **admin)) as conn:
            conn.execute(f"CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'")
            conn.execute("CREATE DATABASE open")
            conn.execute("CREATE DATABASE closed")
            conn.execute("REVOKE CONNECT ON DATABASE closed FROM PUBLIC")
            hba = conn.execute("SHOW hba_file").fetchone()[0]
            with open(hba, "w") as file:
                file.write(
                    "local all all trust\n"
                    "host all postgres 127.0.0.1/32 trust\n"
                    "host all all 127.0.0.1/32 scram-sha-256\n"
                )
            conn.execute("SELECT pg_reload_conf()")
        yield server


def test_wrong_password_is_one_line(password_server, tmp_path):
    url = f"postgresql://app:wrong-{PASSWORD}@127.0.0.1:{password_server.port}/open"
    line = assert_one_line(manage("migrate", url=url, tmp_path=tmp_path), "DATABASE_URL=postgresql://app:***@")
    assert 'refused the password of user "app"' in line


def test_no_connect_privilege_is_one_line_with_the_grant(password_server, tmp_path):
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{password_server.port}/closed"
    assert_one_line(
        manage("migrate", url=url, tmp_path=tmp_path), 'may not connect to database "closed"', "GRANT CONNECT"
    )


def test_no_create_privilege_on_public_is_one_line_with_a_grant(password_server, tmp_path):
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{password_server.port}/open"
    assert_one_line(manage("migrate", url=url, tmp_path=tmp_path), "GRANT")


def test_unmigrated_database_asks_for_migrate(password_server, tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{password_server.port}/open"
    assert_one_line(manage("seed_data", url=url, tmp_path=tmp_path), "manage.py migrate")


def test_traceback_option_keeps_the_traceback(tmp_path):
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/fleet"
    result = manage("migrate", "--traceback", url=url, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr

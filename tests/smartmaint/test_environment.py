"""DATABASE_URL and REDIS_URL parsing."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from smartmaint.environment import cache_config, database_config


@pytest.mark.parametrize(
    "url",
    [
        "postgres://app:s3cret@db.example.com:6543/fleet",
        "postgresql://app:s3cret@db.example.com:6543/fleet",
        "postgresql+psycopg://app:s3cret@db.example.com:6543/fleet",
        "postgresql+asyncpg://app:s3cret@db.example.com:6543/fleet",
    ],
)
def test_every_postgres_scheme_selects_the_project_backend(url):
    config = database_config(url)
    assert config["ENGINE"] == "smartmaint.db_backend"
    assert (config["NAME"], config["USER"], config["PASSWORD"], config["HOST"], config["PORT"]) == (
        "fleet",
        "app",
        "s3cret",
        "db.example.com",
        6543,
    )


def test_query_parameters_are_kept_as_connection_options():
    config = database_config("postgresql+asyncpg://app@db.example.com/fleet?sslmode=require&application_name=web")
    assert config["OPTIONS"]["sslmode"] == "require"
    assert config["OPTIONS"]["application_name"] == "web"


def test_asyncpg_ssl_parameter_becomes_sslmode():
    config = database_config("postgresql+asyncpg://app@db.example.com/fleet?ssl=require")
    assert config["OPTIONS"]["sslmode"] == "require"
    assert "ssl" not in config["OPTIONS"]


def test_connect_timeout_defaults_but_url_wins():
    assert database_config("postgresql://h/db")["OPTIONS"]["connect_timeout"] == 10
    assert database_config("postgresql://h/db?connect_timeout=3")["OPTIONS"]["connect_timeout"] == 3


def test_sqlite_url(tmp_path):
    config = database_config(f"sqlite:///{tmp_path}/x.sqlite3")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == f"{tmp_path}/x.sqlite3"


def test_unknown_scheme_is_refused_with_the_accepted_ones():
    with pytest.raises(ImproperlyConfigured, match="postgresql"):
        database_config("mysql://app@db/fleet")


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/1", "rediss://cache.example.com:6380/0"])
def test_redis_urls_select_django_redis(url):
    config = cache_config(url, key_prefix="sm")
    assert config["BACKEND"] == "smartmaint.cache.FailOpenRedisCache"
    assert config["LOCATION"] == url


def test_no_redis_url_means_local_memory():
    assert cache_config("", key_prefix="sm")["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"


def test_unknown_cache_scheme_is_refused():
    with pytest.raises(ImproperlyConfigured, match="redis://"):
        cache_config("memcached://x", key_prefix="sm")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3c@ret/word#1@db.example.com:5432/fleet",
        "postgresql://app:s3cr/et@db.example.com:5432/fleet",
        "postgresql://app:s3cr?et@db.example.com:5432/fleet",
        "postgresql://app:s3cr#et@db.example.com:5432/fleet",
        "postgresql://app:s3cr[et@db.example.com:5432/fleet",
    ],
)
def test_unencoded_special_characters_in_the_password_ask_for_percent_encoding(url):
    with pytest.raises(ImproperlyConfigured) as raised:
        database_config(url)
    message = str(raised.value)
    assert "DATABASE_URL" in message and "percent-encoded" in message
    assert "urllib.parse.quote" in message
    # Never the password itself: the message may end up in a ticket.
    assert "s3c" not in message


def test_percent_encoded_password_is_decoded():
    config = database_config("postgresql://app:p%40ss%2Fword%231@db.example.com:5432/fleet")
    assert (config["PASSWORD"], config["HOST"], config["PORT"], config["NAME"]) == (
        "p@ss/word#1",
        "db.example.com",
        5432,
        "fleet",
    )


@pytest.mark.parametrize(
    ("query", "mode"),
    [
        ("ssl=true", "require"),
        ("ssl=1", "require"),
        ("ssl=on", "require"),
        ("ssl=false", "disable"),
        ("ssl=0", "disable"),
        ("ssl=off", "disable"),
        ("ssl=verify-full", "verify-full"),
        ("ssl=prefer", "prefer"),
        ("sslmode=verify-ca", "verify-ca"),
        ("sslmode=REQUIRE", "require"),
    ],
)
def test_ssl_values_become_valid_sslmodes(query, mode):
    assert database_config(f"postgresql+asyncpg://app@db.example.com/fleet?{query}")["OPTIONS"]["sslmode"] == mode


@pytest.mark.parametrize("query", ["ssl=maybe", "sslmode=true", "sslmode=required"])
def test_unknown_ssl_values_are_refused_with_the_accepted_ones(query):
    with pytest.raises(ImproperlyConfigured, match=r"DATABASE_URL has ssl(mode)?=.*verify-full"):
        database_config(f"postgresql://app@db.example.com/fleet?{query}")

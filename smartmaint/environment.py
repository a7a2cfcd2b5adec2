"""Turn environment values (database and cache URLs, required secrets) into Django settings.

Kept apart from ``settings.py`` so the parsing rules can be tested on their own.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import environ
from django.core.exceptions import ImproperlyConfigured

POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}
DATABASE_ENGINE = "smartmaint.db_backend"
# libpq's sslmode values, and asyncpg's boolean spellings of ssl= (a URL copied from an async service).
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
SSL_BOOLEANS = {
    **dict.fromkeys(("true", "1", "on", "yes"), "require"),
    **dict.fromkeys(("false", "0", "off", "no"), "disable"),
}
PERCENT_ENCODE_HINT = (
    "special characters (@ : / ? # [ ] %) in the user name and password must be percent-encoded, e.g. "
    "python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=\"\"))' 'p@ss/word#1' "
    "prints p%40ss%2Fword%231"
)


class MissingSettingError(ImproperlyConfigured):
    """Raised at startup when production mode lacks a required variable."""


def database_config(url: str, *, conn_max_age: int = 0, connect_timeout: int = 10, statement_timeout: int = 0) -> dict:
    """Return a ``DATABASES`` entry for ``url``.

    SQLAlchemy-style driver suffixes (``postgresql+asyncpg://``) are dropped, so
    a URL copied from an async service just works, and asyncpg's ``ssl=``
    parameter becomes psycopg's ``sslmode=`` (``true`` meaning ``require``). A password with unencoded special
    characters, or an unknown SSL mode, is refused with what to do. Other query parameters
    (``sslmode=require``, ``connect_timeout=5``, ...) are kept as connection
    options and win over ``connect_timeout``. ``statement_timeout`` (seconds, 0: none) makes the server cancel a
    statement that runs longer, so a frozen or overloaded database cannot hold a web worker indefinitely.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL": an unencoded [ or ] in the password
        raise ImproperlyConfigured(f"DATABASE_URL cannot be parsed ({exc}): {PERCENT_ENCODE_HINT}.") from None
    scheme, _, _driver = parts.scheme.partition("+")
    scheme = scheme.lower()
    if scheme in POSTGRES_SCHEMES:
        _check_authority(parts)
        query = [
            _ssl_option(key, value) if key in ("ssl", "sslmode") else (key, value)
            for key, value in parse_qsl(parts.query)
        ]
        normalized = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), parts.fragment))
        try:
            config = environ.Env.db_url_config(normalized, engine=DATABASE_ENGINE)
        except ValueError as exc:  # a port that is not a number, a broken [IPv6] address
            raise ImproperlyConfigured(f"DATABASE_URL cannot be parsed ({exc}): {PERCENT_ENCODE_HINT}.") from None
        options = config.setdefault("OPTIONS", {})
        options.setdefault("connect_timeout", connect_timeout)
        if statement_timeout > 0 and "options" not in options:
            options["options"] = f"-c statement_timeout={statement_timeout * 1000}"
    elif scheme == "sqlite":
        config = environ.Env.db_url_config(url)
    else:
        raise ImproperlyConfigured(
            f"DATABASE_URL scheme {parts.scheme!r} is not supported; use postgresql:// (or postgres://, "
            "postgresql+psycopg://, postgresql+asyncpg://) or sqlite:///path."
        )
    config["CONN_MAX_AGE"] = conn_max_age
    config["CONN_HEALTH_CHECKS"] = conn_max_age > 0
    return config


def _check_authority(parts) -> None:
    """Refuse a URL whose password holds an unencoded ``/``, ``?`` or ``#``.

    Such a character ends the host part early (RFC 3986), so ``postgresql://app:p@ss/word#1@db:5432/x`` would
    otherwise connect to host ``ss``, database ``word``, or fail with "Port could not be cast to integer". The
    sign is an ``@`` after the host part: database names and connection options practically never hold one
    (and one that must can be written ``%40``).
    """
    if "@" in f"{parts.path}?{parts.query}#{parts.fragment}":
        raise ImproperlyConfigured(
            "The password in DATABASE_URL must be percent-encoded (an '@' follows the host part, so it holds "
            f"/ ? or #): {PERCENT_ENCODE_HINT}."
        )
    try:
        parts.port  # noqa: B018  (raises ValueError when the text after the last ':' is not a number)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL has an invalid port ({exc}); {PERCENT_ENCODE_HINT}.") from None


def _ssl_option(key: str, value: str) -> tuple[str, str]:
    """asyncpg's ``ssl=`` (``true``, ``require``, ...) or psycopg's ``sslmode=``, as a valid ``sslmode``."""
    mode = value.strip().lower()
    mode = SSL_BOOLEANS.get(mode, mode) if key == "ssl" else mode
    if mode not in SSL_MODES:
        accepted = ", ".join(SSL_MODES) + (" (or true/false)" if key == "ssl" else "")
        raise ImproperlyConfigured(f"DATABASE_URL has {key}={value!r}; use one of {accepted}.")
    return "sslmode", mode


def cache_config(url: str | None, *, key_prefix: str, socket_timeout: float = 2, retry_seconds: float = 5) -> dict:
    """Return a ``CACHES["default"]`` entry: Redis (django-redis, failing open: ``smartmaint.cache``) for
    ``redis://``/``rediss://``, else local memory."""
    if not url:
        return {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "smartmaint",
            "KEY_PREFIX": key_prefix,
        }
    scheme = urlsplit(url).scheme
    if scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"REDIS_URL scheme {scheme!r} is not supported; use redis:// or rediss://.")
    return {
        "BACKEND": "smartmaint.cache.FailOpenRedisCache",
        "LOCATION": url,
        "KEY_PREFIX": key_prefix,
        "OPTIONS": {
            "CLIENT_CLASS": "smartmaint.cache.FailOpenClient",
            # Fail fast: a readiness probe or a page must not hang on a dead cache.
            "SOCKET_CONNECT_TIMEOUT": socket_timeout,
            "SOCKET_TIMEOUT": socket_timeout,
            # After a failure, requests skip Redis this long before trying it again.
            "RETRY_SECONDS": retry_seconds,
        },
    }


def require(env: environ.Env, names: list[str], *, reason: str) -> None:
    """Raise one ``MissingSettingError`` naming every variable in ``names`` that is unset or empty."""
    missing = [name for name in names if not env.str(name, default="").strip()]
    if missing:
        raise MissingSettingError(f"{', '.join(missing)} must be set {reason}.")


def parse_min_time(value: str) -> datetime:
    """``READINGS_MIN_TIME``: an ISO 8601 date-time with a UTC offset (``Z`` or ``+01:00``)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ImproperlyConfigured(
            f"READINGS_MIN_TIME must be an ISO 8601 date-time with a UTC offset, e.g. 1990-01-01T00:00:00Z; "
            f"got {value!r}."
        )
    return moment

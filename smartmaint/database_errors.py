"""One line for an operator when a management command meets a database it cannot use.

``manage.py`` catches database errors escaping any command and prints ``explain(exc)``: the database
(``DATABASE_URL``, password redacted), the cause in plain words and what to do, instead of an 80-line
traceback. Only failures of the environment are explained (cannot connect, refused login, a missing
privilege, a server that went away); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import psycopg
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError

#: What ``manage.py`` catches around every command; ``explain`` decides which of them it can put in one line.
DATABASE_ERRORS = (DatabaseError, psycopg.Error, sqlite3.Error)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _driver_error(exc: BaseException) -> BaseException | None:
    """The driver's own exception behind Django's wrappers (and MigrationSchemaMissing), if any."""
    return next((e for e in _chain(exc) if isinstance(e, psycopg.Error | sqlite3.Error)), None)


def _database() -> tuple[str, dict]:
    """How the database is named in messages, and its settings."""
    from smartmaint.doctor import redact

    db = settings.DATABASES["default"]
    url = getattr(settings, "DATABASE_URL", "")
    if url:
        return f"DATABASE_URL={redact(url)}", db
    return f"the SQLite database {db['NAME']} (DATABASE_URL is not set)", db


def _connect_failure(message: str, db: dict) -> tuple[str, str] | None:
    """(cause, remedy) for a connection PostgreSQL refused or never answered; None if not recognised."""
    user = db.get("USER") or "(none)"
    host, port = db.get("HOST") or "localhost", db.get("PORT") or 5432
    timeout = (db.get("OPTIONS") or {}).get("connect_timeout")

    def found(pattern: str) -> re.Match | None:
        return re.search(pattern, message, re.IGNORECASE)

    if match := found(r'password authentication failed for user "([^"]*)"'):
        return (
            f'the server refused the password of user "{match[1]}"',
            "correct the user and password in DATABASE_URL (special characters percent-encoded)",
        )
    if match := found(r'role "([^"]*)" does not exist'):
        return (
            f'the server has no role "{match[1]}"',
            f"correct the user in DATABASE_URL, or create the role: CREATE ROLE \"{match[1]}\" LOGIN PASSWORD '...'",
        )
    if match := found(r'database "([^"]*)" does not exist'):
        return (
            f'the server has no database "{match[1]}"',
            f'create it (CREATE DATABASE "{match[1]}" OWNER "{user}";) or correct the database name in DATABASE_URL',
        )
    if match := found(r'permission denied for database "([^"]*)"'):
        return (
            f'user "{user}" may not connect to database "{match[1]}"',
            f'as the database\'s owner: GRANT CONNECT ON DATABASE "{match[1]}" TO "{user}";',
        )
    if found(r"no pg_hba\.conf entry"):
        return (
            f'the server does not accept user "{user}" from this machine (pg_hba.conf)',
            "allow this client in the server's pg_hba.conf (or the provider's network settings); "
            "if the server accepts TLS connections only, add ?sslmode=require to DATABASE_URL",
        )
    if found(r"server does not support SSL, but SSL was required"):
        return (
            f"the server at {host}:{port} offers no TLS but DATABASE_URL requires it "
            f"(sslmode={(db.get('OPTIONS') or {}).get('sslmode', 'require')})",
            "connect to the server's TLS address or enable ssl on the server; "
            "drop sslmode from DATABASE_URL only on a network you trust",
        )
    if found(r"connection refused"):
        return (
            f"nothing accepts connections at {host}:{port} (connection refused)",
            "start the database server, or correct the host and port in DATABASE_URL",
        )
    if found(r"failed to resolve host|could not translate host name|name or service not known|nodename nor serv"):
        return (
            f'the host name "{host}" cannot be resolved',
            "correct the host in DATABASE_URL (in docker compose, the service name such as db), or check DNS",
        )
    if found(r"timeout expired|timed out"):
        return (
            f"{host}:{port} did not answer within {timeout} s (DATABASE_CONNECT_TIMEOUT)",
            "check that host and port are the database's and that no firewall or security group drops this "
            "machine's connections; on a slow network raise DATABASE_CONNECT_TIMEOUT",
        )
    if found(r"network is unreachable|no route to host"):
        return (f"there is no network route to {host}", "check the host in DATABASE_URL and this machine's network")
    if found(r"too many connections|remaining connection slots"):
        return (
            "the server has no free connection slots",
            "close idle clients, raise the server's max_connections, or put a pooler (PgBouncer) in front",
        )
    if found(r"the database system is (starting up|shutting down|in recovery mode|not yet accepting)"):
        return ("the server is starting up or shutting down", "wait until it is up and run the command again")
    return None


def explain(exc: BaseException) -> str | None:
    """One line naming the database, the cause and the remedy; None when ``exc`` is no operator's mistake."""
    driver = _driver_error(exc)
    if driver is None:
        return None
    message = " ".join(str(driver).split())
    # Server errors go on with the statement ("LINE 1: CREATE TABLE ..."): the first line says it.
    first_line = (str(driver).strip().splitlines() or [""])[0]
    where, db = _database()

    if isinstance(driver, sqlite3.Error):
        if isinstance(driver, sqlite3.OperationalError):
            return (
                f"Cannot use {where}: {message}. Check that DJANGO_VAR_DIR is writable and has free space, "
                "or set DATABASE_URL."
            )
        return None

    if isinstance(driver, psycopg.errors.InsufficientPrivilege):
        user = db.get("USER") or "(none)"
        return (
            f'The database refused a privilege to user "{user}" ({where}): {first_line}. Remedy: as the owner of '
            "the object named, grant it (for migrate on PostgreSQL 15 or later: "
            f'GRANT CREATE ON SCHEMA public TO "{user}";), or run the command as the owning role.'
        )

    if isinstance(driver, psycopg.errors.UndefinedTable):
        return (
            f"The database lacks tables of this app ({where}): {first_line}. "
            "Remedy: run `manage.py migrate` (`manage.py doctor` shows what is missing)."
        )

    if not isinstance(driver, psycopg.OperationalError | psycopg.InterfaceError):
        return None  # a programming error: its traceback is what a developer needs
    connecting = isinstance(driver, psycopg.errors.ConnectionTimeout) or re.match(
        r"(connection failed|failed to resolve host|connection to server)", message
    )
    if connecting:
        cause, remedy = _connect_failure(message, db) or (message.removeprefix("connection failed: "), "")
        remedy = remedy or "check the server and DATABASE_URL; `manage.py doctor` checks every dependency"
        return f"Cannot connect to the database at {where}: {cause}. Remedy: {remedy}."
    if isinstance(exc, OperationalError | InterfaceError) or isinstance(driver, psycopg.OperationalError):
        if re.search(r"statement timeout", message, re.IGNORECASE):
            remedy = "raise DATABASE_STATEMENT_TIMEOUT for this command (0: no limit, manage.py's default)"
        else:
            remedy = "check that the server is up and reachable, then run the command again (--traceback shows where)"
        return f"The database failed during the command ({where}): {first_line}. Remedy: {remedy}."
    return None

"""The registry behind ``manage.py doctor``: each app registers the checks of what it owns; ``run_checks`` runs them.

Each check returns ``Result``\\s with status OK, FAIL (with a one-line remedy)
or SKIP (the dependency is not configured, or cannot be checked because one it
needs failed). ``run_checks`` runs every registered check in order and never
raises.

As Django's system checks, the checks live with the app whose objects they
inspect and are registered from its ``AppConfig.ready()``: the database,
migrations, cache, S3 and SMTP here in smartmaint (``smartmaint.doctor_checks``),
the TimescaleDB objects and reading times in ``readings.doctor``, MLflow and the
champion models in ``mlops.doctor``.

Dependency direction: smartmaint sits below the apps (sensors, readings,
mlops) and must not import them; apps import this module, never the reverse.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit, urlunsplit

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"
DEFAULT_TIMEOUT = 10.0
MAX_LISTED = 10
MAX_DETAIL = 400
UNEXPECTED = "Unexpected error in this check; the message says what failed."


@dataclass(frozen=True)
class Result:
    check: str
    status: str
    detail: str
    remedy: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class CheckTimeout(Exception):
    pass


# --- The registry --------------------------------------------------------------------------------

CheckFunction = Callable[[BaseDatabaseWrapper, float], "Result | list[Result]"]


@dataclass(frozen=True)
class Check:
    function: CheckFunction
    name: str
    order: int
    requires: tuple[str, ...]
    skip_names: tuple[str, ...]
    unavailable: str


_registry: dict[str, Check] = {}


def register(
    check: CheckFunction,
    *,
    name: str,
    order: int,
    requires: Iterable[str] = (),
    skip_names: Iterable[str] | None = None,
    unavailable: str | None = None,
) -> CheckFunction:
    """Add ``check(connection, timeout)`` to the doctor's report.

    ``order`` places its lines in the report (the database 10, TimescaleDB 20,
    migrations 30, stored data 40, Redis 50, S3 60, MLflow 70, champion models
    80, SMTP 90): a number rather than the order of registration, because
    ``ready()`` runs in INSTALLED_APPS order while the report reads from the
    foundations up. ``requires`` names checks whose first line must be OK for
    this one to run; otherwise it prints SKIP for each of ``skip_names``
    (default: its name), saying which requirement is missing in the words of
    that requirement's ``unavailable``. Registering a name again replaces it,
    so a second ``ready()`` adds no duplicates.
    """
    _registry[name] = Check(
        function=check,
        name=name,
        order=order,
        requires=tuple(requires),
        skip_names=tuple(skip_names) if skip_names is not None else (name,),
        unavailable=unavailable or f"the {name} check did not pass",
    )
    return check


def registered() -> list[Check]:
    """The registered checks in report order (ties in the order they were registered)."""
    return sorted(_registry.values(), key=lambda check: check.order)


def guarded(check: str, function: Callable, *args) -> list[Result]:
    """Run one check; a bug or an unforeseen error becomes its FAIL line instead of ending the report."""
    try:
        outcome = function(*args)
    except Exception as exc:
        return [Result(check, FAIL, first_line(exc), UNEXPECTED)]
    return list(outcome) if isinstance(outcome, list | tuple) else [outcome]


def run_checks(*, timeout: float = DEFAULT_TIMEOUT, using: str = "default") -> list[Result]:
    connection = connections[using]
    results: list[Result] = []
    passed: dict[str, bool] = {}
    for check in registered():
        missing = next((name for name in check.requires if not passed.get(name)), None)
        if missing is not None:
            reason = _registry[missing].unavailable if missing in _registry else f"no {missing} check is registered"
            lines = [Result(name, SKIP, f"not checked: {reason}") for name in check.skip_names]
            passed[check.name] = False
        else:
            lines = guarded(check.name, check.function, connection, timeout)
            passed[check.name] = bool(lines) and lines[0].status == OK
        results += lines
    return results


# --- Helpers for the checks ----------------------------------------------------------------------


def elapsed_ms(start: float) -> str:
    return f"{(time.perf_counter() - start) * 1000:.1f} ms"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return message[:MAX_DETAIL]


def redact(url: str) -> str:
    """``url`` without its password, for output that may end up in a ticket."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" (+{len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")


def within(seconds: float, function: Callable, *args):
    """``function(*args)`` in a daemon thread, given up after ``seconds``.

    For network checks whose libraries have retries and resolvers of their own
    (redis-py, botocore, MLflow, getaddrinfo): whatever they do, the doctor
    answers within the timeout, and a thread still stuck cannot keep the
    process alive. Never used for the database: Django's connections belong to
    their thread (and a test database may serve one connection only).
    """
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # handed to the caller as is
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="doctor-check", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise CheckTimeout(f"no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@contextmanager
def bounded(connection: BaseDatabaseWrapper, seconds: float) -> Iterator[None]:
    """A transaction whose statements PostgreSQL cancels after ``seconds`` (a lock held by a migration, say)."""
    with transaction.atomic(using=connection.alias):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{int(seconds * 1000)}ms"])
        yield


def fetch(connection: BaseDatabaseWrapper, sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()

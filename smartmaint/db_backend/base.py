"""Database wrapper: django-timescaledb's PostgreSQL backend plus the ``TIMESCALEDB`` mode.

django-timescaledb creates the extension in ``prepare_database`` but only
catches ``ProgrammingError``; a server without the extension raises
``NotSupportedError``, and a missing extension then breaks every hypertable
statement. Here the extension is created when possible, and otherwise the
``TIMESCALEDB`` setting decides: ``auto`` builds plain tables (and says so),
``required`` stops with one clear message.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, transaction
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper
from timescale.db.backends.postgresql.base import DatabaseWrapper as TimescaleDatabaseWrapper

from smartmaint.db_backend.schema import DatabaseSchemaEditor
from smartmaint.db_backend.watchdog import WATCHDOG


class TimescaleDBUnavailable(ImproperlyConfigured):
    """TIMESCALEDB=required but the server cannot provide the extension."""


class DatabaseWrapper(TimescaleDatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._timescaledb_enabled: bool | None = None
        # Why TimescaleDB is not used, for `migrate` to report once; None when it is.
        self.timescaledb_unavailable_reason: str | None = None
        # Cleared when the server refuses COPY FROM STDIN (some proxies do);
        # bulk writes then fall back to batched INSERTs.
        self.copy_from_stdin = True
        # First and for good: every statement runs under the client-side deadline (see watchdog).
        self.execute_wrappers.append(self._deadline_wrapper)

    @property
    def client_deadline(self) -> float:
        """Seconds after which a statement is given up on this side: the server's statement_timeout plus
        DATABASE_CLIENT_GRACE; 0 (none) when there is no statement timeout (manage.py commands)."""
        seconds = getattr(settings, "DATABASE_STATEMENT_TIMEOUT", 0)
        return seconds + getattr(settings, "DATABASE_CLIENT_GRACE", 5) if seconds else 0

    def _deadline_wrapper(self, execute, sql, params, many, context):
        deadline = self.client_deadline
        if not deadline or self.connection is None:
            return execute(sql, params, many, context)
        with WATCHDOG.guard(self.connection.pgconn.socket, deadline):
            return execute(sql, params, many, context)

    def is_usable(self):
        # Django's check sends SELECT 1 outside the execute wrappers: a frozen server would hold it for ever.
        deadline = self.client_deadline
        if not deadline or self.connection is None:
            return super().is_usable()
        try:
            fd = self.connection.pgconn.socket
        except Exception:  # closed: not usable
            return False
        with WATCHDOG.guard(fd, deadline):
            return super().is_usable()

    @property
    def timescaledb_mode(self) -> str:
        return getattr(settings, "TIMESCALEDB", "auto")

    def connect(self):
        super().connect()
        # A new session may be on another server (failover, a restored dump).
        self._timescaledb_enabled = None
        self.copy_from_stdin = True

    @property
    def timescaledb_enabled(self) -> bool:
        """Whether hypertables and other TimescaleDB objects should be used on this connection."""
        if self.timescaledb_mode == "off":
            return False
        if self._timescaledb_enabled is None:
            with self.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
                self._timescaledb_enabled = cursor.fetchone() is not None
        return self._timescaledb_enabled

    def prepare_database(self):
        # Skip django-timescaledb's own attempt (it swallows only ProgrammingError)
        # and run PostgreSQL's preparation, then decide here.
        PostgresDatabaseWrapper.prepare_database(self)
        if self.timescaledb_mode == "off":
            self.timescaledb_unavailable_reason = "TIMESCALEDB=off"
            return
        self._timescaledb_enabled = None
        if self.timescaledb_enabled:
            # Already there: nothing to create, and no CREATE privilege needed.
            self.timescaledb_unavailable_reason = None
            return
        try:
            # atomic() gives a savepoint when called inside a transaction, so a
            # failure never poisons the caller's transaction.
            with transaction.atomic(using=self.alias), self.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        # Not installed (NotSupportedError), not permitted (ProgrammingError),
        # not preloaded (OperationalError): all mean no TimescaleDB here.
        except DatabaseError as exc:
            self._timescaledb_enabled = False
            reason = str(exc).strip().splitlines()[0]
            if self.timescaledb_mode == "required":
                raise TimescaleDBUnavailable(
                    f'TIMESCALEDB=required but the "timescaledb" extension cannot be created on this server '
                    f"({reason}). Install TimescaleDB on the server and add it to shared_preload_libraries, "
                    'or run "CREATE EXTENSION timescaledb;" as a superuser, or set TIMESCALEDB=auto '
                    "to use plain PostgreSQL tables."
                ) from exc
            self.timescaledb_unavailable_reason = reason
        else:
            self._timescaledb_enabled = True
            self.timescaledb_unavailable_reason = None

"""The API's exception handler: drf-standardized-errors' shape, with database trouble as a 503 to retry.

A refused or timed-out connection, a cancelled statement (DATABASE_STATEMENT_TIMEOUT), a deadlock or a
serialization failure is the server's momentary trouble, not the client's mistake and not a bug: the client
should retry, so it gets 503 with Retry-After, never a 500. The cause is logged, never shown (it carries hosts).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from drf_standardized_errors.handler import ExceptionHandler as StandardizedExceptionHandler
from rest_framework import exceptions, status

logger = logging.getLogger("smartmaint.api")


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is unavailable or busy; retry later."
    default_code = "database_unavailable"

    def __init__(self, detail=None, code=None):
        super().__init__(detail, code)
        self.wait = settings.RETRY_AFTER_SECONDS


class ExceptionHandler(StandardizedExceptionHandler):
    def convert_known_exceptions(self, exc: Exception) -> Exception:
        if isinstance(exc, OperationalError | InterfaceError):
            first_line = (str(exc).strip().splitlines() or [""])[0]
            logger.warning("Database unavailable: %s: %s", type(exc).__name__, first_line)
            return DatabaseUnavailable()
        return super().convert_known_exceptions(exc)

    def report_exception(self, exc: exceptions.APIException, response) -> None:
        # A dependency that is down (503: database, model registry) is logged once per request where it is
        # detected, in one line; a traceback per request (and error-tracker events) would only bury the cause.
        # Django still logs the 503 response itself.
        if exc.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
            return
        super().report_exception(exc, response)

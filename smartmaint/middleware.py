"""Pages outside the API when the database is down: a plain 503 page, not a 500 traceback page."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.template.response import SimpleTemplateResponse

logger = logging.getLogger("smartmaint.db")


class DatabaseUnavailableMiddleware:
    """The admin console (and any other page) answers 503 "database unavailable" with Retry-After.

    The API has its own handler (smartmaint.api.exceptions) and answers in its error shape.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("Database unavailable on %s: %s", request.path, (str(exception).strip().splitlines() or [""])[0])
        response = SimpleTemplateResponse(
            "database_unavailable.html", {"retry_after": settings.RETRY_AFTER_SECONDS}, status=503
        )
        response["Retry-After"] = str(settings.RETRY_AFTER_SECONDS)
        response.render()
        return response

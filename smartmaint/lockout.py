"""Answers to a locked-out sign-in (django-axes): a plain page in the admin, the API's error shape under /api/."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from drf_standardized_errors.handler import exception_handler
from rest_framework import exceptions, status


def lockout_seconds() -> int:
    """How long a lockout lasts after the latest failed attempt (each failure while locked out restarts it)."""
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


class LoginLockedOut(exceptions.APIException):
    """429 with Retry-After, in the API's error shape; a code of its own so clients can tell it from a throttle."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self):
        self.wait = lockout_seconds()  # drf-standardized-errors turns it into Retry-After
        minutes = max(1, round(self.wait / 60))
        super().__init__(
            f"Too many failed sign-ins for this account or from this address; try again in {minutes} minutes."
        )


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: what a locked-out sign-in gets instead of the login form's answer."""
    if request.path.startswith("/api/"):
        response = exception_handler(LoginLockedOut(), {"request": request, "view": None})
        return JsonResponse(response.data, status=response.status_code, headers=dict(response.items()))
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed sign-ins",
        "minutes": max(1, round(lockout_seconds() / 60)),
    }
    response = render(request, "admin/lockout.html", context, status=status.HTTP_429_TOO_MANY_REQUESTS)
    response["Retry-After"] = str(lockout_seconds())
    return response

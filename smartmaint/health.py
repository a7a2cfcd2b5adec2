"""Liveness and readiness endpoints for load balancers and orchestrators."""

from __future__ import annotations

import logging
import uuid

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger("smartmaint.health")


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    if hasattr(cache, "probe"):  # Redis: asked for real, past the circuit breaker that lets requests fail open
        cache.probe()
        return
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("value written to the cache could not be read back")
    cache.delete(key)


CHECKS = {"database": _check_database, "cache": _check_cache}


@never_cache
@require_GET
def healthz(request):
    """Alive: the process answers. Touches no dependency, so a database outage never restarts the web tier."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    """Ready: every dependency answers. 503 names the failing ones.

    The probe is public (load balancers call it without credentials), so it names a failing dependency but not
    why: error messages carry hosts, ports and user names. The cause goes to the log, and ``manage.py doctor``
    gives operators the whole story with remedies.
    """
    results, failing = {}, []
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # any failure means "not ready", whatever its type
            logger.warning("Readiness: %s failing: %s: %s", name, type(exc).__name__, exc)
            results[name] = {"status": "error"}
            failing.append(name)
        else:
            results[name] = {"status": "ok"}
    status = 503 if failing else 200
    return JsonResponse(
        {"status": "unavailable" if failing else "ok", "failing": failing, "checks": results}, status=status
    )


HEALTH_VIEWS = {"/healthz": healthz, "/readyz": readyz}


class HealthCheckMiddleware:
    """Answer /healthz and /readyz before anything looks at the Host header.

    Load balancers and orchestrators probe by IP address; Django would refuse
    such a Host with a 400 (ALLOWED_HOSTS), so the probes are served here,
    first in the chain, and every other request still goes through the host check.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = HEALTH_VIEWS.get(request.path_info)
        return view(request) if view is not None else self.get_response(request)

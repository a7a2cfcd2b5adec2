"""WSGI entry point for gunicorn."""

import gc
import os
import sys

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartmaint.settings")

# gunicorn.arbiter.Arbiter.WORKER_BOOT_ERROR (not imported: this module also serves other WSGI servers).
WORKER_BOOT_ERROR = 3

try:
    from django.core.wsgi import get_wsgi_application

    from smartmaint.request_body import RequestBodyMiddleware

    # Chunked and gzip request bodies, made plain before Django reads them (see smartmaint.request_body).
    application = RequestBodyMiddleware(get_wsgi_application())

    from django.urls import get_resolver

    # What a process loads once (Django, the apps and their libraries, the URLconf a first request would import)
    # lives as long as the process: frozen out of the garbage collector's generations, so a full collection
    # scans only what requests left behind. Unfrozen, one took 190-250 ms on a loaded machine and landed on
    # whichever request came next (the fleet status's p95 in bench/admin.py); frozen, 25-50 ms.
    get_resolver().url_patterns  # noqa: B018 (imports the URLconf and, through it, every admin and view)
    gc.freeze()
except ImproperlyConfigured as exc:
    # One line in the container log instead of a traceback per worker, then exit status 3: gunicorn's
    # arbiter halts the whole server when a worker exits with WORKER_BOOT_ERROR (3), so the container stops
    # and its orchestrator shows why. Any other status (sys.exit's 1) makes the arbiter boot a new worker
    # that fails the same way, for ever.
    print(f"Configuration error: {exc}", file=sys.stderr, flush=True)
    sys.exit(WORKER_BOOT_ERROR)

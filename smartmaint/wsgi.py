"""WSGI entry point for gunicorn."""

import os
import sys

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartmaint.settings")

try:
    from django.core.wsgi import get_wsgi_application

    from smartmaint.request_body import RequestBodyMiddleware

    # Chunked and gzip request bodies, made plain before Django reads them (see smartmaint.request_body).
    application = RequestBodyMiddleware(get_wsgi_application())
except ImproperlyConfigured as exc:
    # One line in the container log instead of a traceback per worker.
    sys.exit(f"Configuration error: {exc}")

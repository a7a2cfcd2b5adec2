"""WSGI entry point for gunicorn."""

import os
import sys

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartmaint.settings")

try:
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
except ImproperlyConfigured as exc:
    # One line in the container log instead of a traceback per worker.
    sys.exit(f"Configuration error: {exc}")

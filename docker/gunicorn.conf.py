"""gunicorn settings of the web image, read from the environment (see .env.example, "Web server").

Loaded by the image's command: ``gunicorn --config docker/gunicorn.conf.py smartmaint.wsgi:application``.
Command-line options given after it still win (``--bind 127.0.0.1:8000`` in tests).
"""

import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {value!r}.") from None


# PORT is what PaaS platforms (Render, Heroku, ...) set; 8000 otherwise.
bind = f"0.0.0.0:{_int('PORT', 8000)}"
# Processes, and threads in each: a worker per core is a good start for this I/O-bound app.
workers = _int("GUNICORN_WORKERS", 3)
# Threaded workers (gthread), always: a CSV export streamed to a slow client holds one thread, not a whole
# process, so health probes and API calls keep being answered by the other threads. With sync workers three
# slow downloads blocked every worker and /healthz stopped answering (docs/deploy.md, "Web server").
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 8)
# Seconds a worker's main loop may stay silent before the arbiter kills it. gthread's main loop reports
# every second whatever its threads do, so this catches a stuck process, not a long request: a long CSV
# export runs to its end instead of being cut off (with a 200 status) when the timeout expires.
timeout = _int("GUNICORN_TIMEOUT", 60)
# Seconds workers get to finish their requests after SIGTERM (docker stop waits 10 s by default).
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 20)
# Replace a worker after this many requests (0: never), with jitter so they do not all restart at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
keepalive = 5

# Access log and errors on stdout/stderr, for `docker logs`.
accesslog = "-"
errorlog = "-"
# Heartbeat files in memory: a slow overlay filesystem must not make the arbiter kill healthy workers.
# gunicorn creates them itself with mkstemp (private names, mode 0600).
SHM = "/dev/shm"  # noqa: S108
if os.path.isdir(SHM):
    worker_tmp_dir = SHM
# No runtime control socket (gunicornc): the container is managed by its orchestrator.
control_socket_disable = True


def on_starting(server):
    """Read the Django settings once in the master, before any worker starts.

    A configuration error (production mode without DJANGO_SECRET_KEY, a malformed DATABASE_URL, ...) then
    stops gunicorn with its one-line message and a non-zero status, so the orchestrator shows the container
    as failed and why. Left to the workers, each would fail to boot and the arbiter would start another.
    The module is dropped again afterwards so that workers (and a reload) import the settings afresh.
    """
    import importlib
    import sys

    from django.core.exceptions import ImproperlyConfigured

    name = os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartmaint.settings")
    try:
        importlib.import_module(name)
    except ImproperlyConfigured as exc:
        raise SystemExit(f"Configuration error: {exc}") from None
    finally:
        sys.modules.pop(name, None)

"""The Celery app: ``celery -A smartmaint worker`` and ``celery -A smartmaint beat`` (Celery's Django layout).

Configuration comes from the Django settings under ``CELERY_`` (settings.py, "Background work"); tasks live in
each app's ``tasks.py`` and are found by ``autodiscover_tasks``. Transient errors are retried through ``JobTask``.
"""

import os
import smtplib

from celery import Celery, Task, signals
from django.conf import settings
from django.db import InterfaceError, OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartmaint.settings")

app = Celery("smartmaint")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Errors that say a service is unavailable for now, not that the data is wrong: the task is retried later.
# (A refused or hung SMTP server inside alerts_notify is not raised: the alert stays pending for the next run.)
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    smtplib.SMTPException,
    ConnectionError,
    TimeoutError,
)


class JobTask(Task):
    """A task retried with exponential backoff (and jitter) on ``TRANSIENT_ERRORS``, never on bad data.

    A task that runs out of retries, or fails on anything else, fails for good: the result backend records it
    with its error and traceback. Apps add their own transient errors with ``autoretry_for=`` on the task.
    """

    abstract = True
    autoretry_for = TRANSIENT_ERRORS
    retry_jitter = True

    @property
    def max_retries(self):
        return settings.TASK_RETRY_MAX

    @property
    def retry_backoff(self):
        return settings.TASK_RETRY_BACKOFF

    @property
    def retry_backoff_max(self):
        return settings.TASK_RETRY_BACKOFF_MAX


@signals.worker_init.connect
def _no_statement_timeout(**kwargs) -> None:
    """Workers run batch jobs, as manage.py commands do: no statement timeout unless the environment sets one.

    (manage.py gets there by defaulting DATABASE_STATEMENT_TIMEOUT to 0; importing this module must not, or the
    web tier would lose its timeout.) Each task's time limit bounds it instead. Runs before the pool starts, so
    every worker process connects without it.
    """
    if "DATABASE_STATEMENT_TIMEOUT" in os.environ or not settings.DATABASE_STATEMENT_TIMEOUT:
        return
    from django.db import connections

    timeout = f"-c statement_timeout={settings.DATABASE_STATEMENT_TIMEOUT * 1000}"
    for alias in connections:
        options = connections.settings[alias].get("OPTIONS", {})
        if options.get("options") == timeout:
            del options["options"]

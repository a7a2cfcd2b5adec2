"""Transient errors retry a task with Celery's own retry (JobTask: autoretry_for, backoff, jitter, max_retries) and
bad data never does; the tasks are called eagerly here (``apply``: Celery runs the retries in turn without waiting
out the backoff) against a database that went away: a throwaway PostgreSQL server, stopped."""

from contextlib import contextmanager

import pytest
from celery import signals
from django.db import OperationalError, connection

from mlops.tasks import alerts_notify, models_retrain
from tests.outages import throwaway_postgres

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def attempts_of(task_name: str):
    """The attempts Celery makes at ``task_name`` (each run, first and retries), as a list of retry numbers."""
    seen: list[int] = []

    def count(sender=None, task=None, **kwargs):
        if task is not None and task.name == task_name:
            seen.append(task.request.retries)

    signals.task_prerun.connect(count, weak=False)
    try:
        yield seen
    finally:
        signals.task_prerun.disconnect(count)


@contextmanager
def database_gone():
    """The app's connection pointed at a PostgreSQL server that has stopped (connection refused), then back."""
    with throwaway_postgres() as server:
        port = server.port
        server.stop()
    saved = {key: connection.settings_dict[key] for key in ("HOST", "PORT")}
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(port))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)


def test_a_database_outage_is_retried_up_to_the_limit_then_fails_for_good_with_its_error(settings):
    settings.TASK_RETRY_MAX = 3
    with database_gone(), attempts_of("mlops.alerts_notify") as attempts:
        result = alerts_notify.apply()
    assert attempts == [0, 1, 2, 3], "the first run and TASK_RETRY_MAX retries"
    assert result.state == "FAILURE" and isinstance(result.result, OperationalError)

    # The database back: the same task runs once and succeeds.
    with attempts_of("mlops.alerts_notify") as attempts:
        result = alerts_notify.apply()
    assert attempts == [0] and result.state == "SUCCESS", result.traceback


def test_bad_data_is_never_retried(settings):
    settings.TASK_RETRY_MAX = 3
    # No readings nor labelled faults to learn from: a ValueError, the data's fault, not the services'.
    with attempts_of("mlops.models_retrain") as attempts:
        result = models_retrain.apply(kwargs={"detector": "supervised"})
    assert attempts == [0]
    assert result.state == "FAILURE" and isinstance(result.result, ValueError)

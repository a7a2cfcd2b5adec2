"""A scoring worker lost mid-run (SIGKILL to the whole ``celery -A smartmaint worker``, as when its machine goes):
the run it had taken goes back on the queue (acks_late; the Redis broker's visibility timeout) and a second worker
completes it, each window scored once and no reading left unscored."""

import socket
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_celery_results.models import TaskResult

from mlops.models import Anomaly, ScoringRun, ScoringWatermark
from mlops.runs import scoring_run
from mlops.tasks import readings_score_pending
from readings.models import Reading
from tests.services import S3_ENV
from tests.workers import (
    TASK_TIMEOUT,
    WORKER_START_TIMEOUT,
    celery_worker,
    purge_queues,
    worker_env,
    worker_kill,
    worker_log,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Seconds after which the broker hands a task taken by a dead worker to another (CELERY_BROKER_VISIBILITY_TIMEOUT):
# short here so the test does not wait the deployment's 15 minutes. Shorter than the run may take on a loaded
# machine, so the second worker may be handed the same task again while it runs it (what the deployment's setting
# avoids): harmless, the run is idempotent, and nothing below depends on how often it ran.
VISIBILITY_TIMEOUT = 10


def idle_transactions() -> int:
    """Other sessions of the test database inside a transaction (a dead worker's, until PostgreSQL drops it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND state LIKE 'idle in transaction%%'"
        )
        return cursor.fetchone()[0]


def test_a_scoring_run_whose_worker_is_killed_is_completed_by_another_worker_each_window_once(
    mlflow_settings, mlflow_url, s3_endpoint, tmp_path
):
    # 8 sensors, 500 readings each a minute apart ending an hour ago (every window ended and past the grace, so
    # the run has all of them to score), with labelled faults; champions trained. Nothing scored yet.
    end = (timezone.now() - timedelta(hours=1)).replace(second=0, microsecond=0)
    call_command(
        "seed_data", "--sensors", "8", "--readings", "4000", "--anomaly-rate", "0.03", "--end", end.isoformat(),
        stdout=StringIO(),
    )  # fmt: skip
    call_command("train_models", "--promote", stdout=StringIO())
    Anomaly.objects.all().delete()
    ScoringWatermark.objects.all().delete()
    ScoringRun.objects.all().delete()
    purge_queues()
    common = {"CELERY_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT), **S3_ENV}

    # The first worker's MLflow answers nothing: its run claims the sensors, then waits on the champion's lookup
    # (its timeout longer than the test) until it is killed there, mid-run, at a moment the test knows.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent.settimeout(WORKER_START_TIMEOUT + TASK_TIMEOUT)
        first_env = worker_env(
            MLFLOW_TRACKING_URI=f"http://127.0.0.1:{silent.getsockname()[1]}",
            MLFLOW_COMMAND_REQUEST_TIMEOUT="3600",
            MLFLOW_COMMAND_REQUEST_MAX_RETRIES="0",
            **common,
        )
        with celery_worker("scoring", env=first_env, log_dir=tmp_path) as first:
            run = readings_score_pending.delay()
            asked, _ = silent.accept()  # the run is scoring: the sensors claimed, the champion asked for
            assert TaskResult.objects.get(task_id=run.id).status == "STARTED"
            worker_kill(first)
            asked.close()
    # PostgreSQL ends the dead worker's session, its transaction rolled back and its claims released.
    deadline = time.monotonic() + TASK_TIMEOUT
    while idle_transactions():
        assert time.monotonic() < deadline, "the killed worker's transaction is still open"
        time.sleep(0.2)
    assert not Anomaly.objects.exists() and not ScoringWatermark.objects.exists()

    second_env = worker_env(MLFLOW_TRACKING_URI=mlflow_url, MLFLOW_S3_ENDPOINT_URL=s3_endpoint, **common)
    with celery_worker("scoring", env=second_env, log_dir=tmp_path) as second:
        try:
            summary = run.get(timeout=TASK_TIMEOUT + VISIBILITY_TIMEOUT)  # the same task, redelivered
        except Exception:
            print(worker_log(tmp_path, second))
            raise
        again = readings_score_pending.delay().get(timeout=TASK_TIMEOUT)

    record = TaskResult.objects.get(task_id=run.id)
    assert (record.status, record.worker) == ("SUCCESS", second), summary
    assert f"mlops.readings_score_pending[{run.id}] received" in worker_log(tmp_path, second)
    assert again["windows"] == 0 and again["anomalies"] == 0, "the watermarks left windows to score again"
    # Each window scored once: the windows of every run logged (the killed one's rolled back with it) add up to
    # those of the whole range scored again on request, which finds exactly the anomalies already stored.
    scored = sum(ScoringRun.objects.values_list("windows", flat=True))
    rows = set(Anomaly.objects.values_list("sensor_id", "start", "model_name", "model_version"))
    reference = scoring_run(start=Reading.objects.earliest("time").time - timedelta(days=1), end=timezone.now())
    assert scored == reference.summary()["windows"] > 0
    found = {
        (anomaly.sensor_id, anomaly.start, anomaly.model_name, anomaly.model_version)
        for result in reference.scored.values()
        for anomaly in result.anomalies
    }
    assert rows and found == rows
    assert Anomaly.objects.count() == len(rows)
    # No reading left unscored: every one lies before its sensor's watermark.
    marks = dict(ScoringWatermark.objects.values_list("sensor_id", "scored_until"))
    assert marks and not any(
        Reading.objects.filter(sensor_id=pk, time__gte=mark).exists() for pk, mark in marks.items()
    ), marks
    assert set(marks) == set(Reading.objects.values_list("sensor_id", flat=True).distinct())

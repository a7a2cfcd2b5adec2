"""manage.py doctor on the background side: a worker answers and serves every queue, beat sent the jobs lately,
no job failing. Real workers and a real beat on the suite's broker (tests/workers.py)."""

import json
import uuid

import pytest
from django.db import connection
from django_celery_results.models import TaskResult

from smartmaint.doctor import FAIL, OK
from smartmaint.doctor_checks import check_beat, check_jobs, check_workers
from tests.workers import beat_sends_due_jobs, celery_worker, purge_queues, worker_env

TIMEOUT = 10.0


def test_workers_fail_with_none_answering_then_name_the_queues_no_worker_serves(tmp_path, settings):
    settings.WORKER_PING_TIMEOUT = 2
    purge_queues()
    none = check_workers(connection, TIMEOUT)
    assert none.status == FAIL and "no worker answered" in none.detail
    assert "celery -A smartmaint worker" in none.remedy
    env = worker_env()
    with celery_worker("scoring", env=env, log_dir=tmp_path) as scorer:
        partial = check_workers(connection, TIMEOUT)
        assert partial.status == FAIL and scorer in partial.detail
        assert "default, ingest, mail, training" in partial.detail
        assert "--queues default,ingest,mail,training" in partial.remedy
        with celery_worker("default,ingest,mail,training", env=env, log_dir=tmp_path) as other:
            both = check_workers(connection, TIMEOUT)
    assert both.status == OK and "2 answering" in both.detail and other in both.detail


@pytest.mark.django_db(transaction=True)
def test_beat_fails_until_beat_sent_the_jobs_and_a_failing_job_is_named(tmp_path):
    assert check_beat(connection, TIMEOUT).status == FAIL
    beat_sends_due_jobs(tmp_path, env=worker_env())
    purge_queues()  # no worker here: the jobs it sent are dropped

    result = check_beat(connection, TIMEOUT)
    assert result.status == OK, result
    # Sent but not run yet: not late before three periods.
    [jobs] = check_jobs(connection, TIMEOUT)
    assert jobs.status == OK, jobs

    TaskResult.objects.create(
        task_id=str(uuid.uuid4()),
        task_name="mlops.alerts_notify",
        periodic_task_name="Alert mail",
        status="FAILURE",
        result=json.dumps({"exc_type": "OperationalError", "exc_message": ["server closed the connection"]}),
    )
    [jobs] = check_jobs(connection, TIMEOUT)
    assert jobs.status == FAIL and "Alert mail: last run failed" in jobs.detail and "server closed" in jobs.detail
    assert "Task results" in jobs.remedy

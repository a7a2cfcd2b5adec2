"""The jobs page: each periodic job with its schedule, last run, last failure and next run; "Run now" for staff who
may change jobs, sent to the job's queue on the real broker."""

import json
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from smartmaint.celery import app
from tests.admin.conftest import make_staff
from tests.workers import purge_queues

pytestmark = pytest.mark.django_db
URL = reverse("admin:django_celery_beat_periodictask_changelist")


def record(job: str, status: str, result, *, ago: timedelta, took: float = 2.5) -> None:
    done = timezone.now() - ago
    TaskResult.objects.create(
        task_id=str(uuid.uuid4()),
        task_name=PeriodicTask.objects.get(name=job).task,
        periodic_task_name=job,
        status=status,
        result=json.dumps(result),
        date_started=done - timedelta(seconds=took),
        date_done=done,
    )


def test_jobs_page_shows_schedule_last_run_last_failure_and_next_run(superuser_client):
    PeriodicTask.objects.filter(name="Score readings").update(last_run_at=timezone.now() - timedelta(seconds=20))
    mlflow_down = {"exc_type": "MLflowUnavailable", "exc_message": ["MLflow down"]}
    record("Score readings", "FAILURE", mlflow_down, ago=timedelta(minutes=5))
    record("Score readings", "SUCCESS", {"windows": 392, "anomalies": 80}, ago=timedelta(seconds=20))
    db_gone = {"exc_type": "OperationalError", "exc_message": ["db gone"]}
    record("Alert mail", "FAILURE", db_gone, ago=timedelta(seconds=30))

    page = superuser_client.get(URL).content.decode()

    for name in ("Score readings", "Alert rules", "Alert mail", "Retrain models"):
        assert name in page
    assert "every 60 seconds" in page and "0 3 * * 0" in page
    assert "2.5 s; {&quot;windows&quot;: 392, &quot;anomalies&quot;: 80}" in page
    assert "MLflowUnavailable: MLflow down" in page  # the last failure, though a run succeeded since
    assert "FAILED: OperationalError: db gone" in page
    assert "when beat starts" in page  # jobs beat has not sent yet
    assert 'value="run_now"' in page


def test_run_now_sends_the_job_to_its_queue_as_beat_would(superuser_client):
    purge_queues()
    job = PeriodicTask.objects.get(name="Score readings")
    response = superuser_client.post(URL, {"action": "run_now", "_selected_action": [job.pk]}, follow=True)
    assert response.status_code == 200
    with app.connection_for_write() as connection:
        message = connection.default_channel.basic_get("scoring")
    assert message is not None, "nothing was sent to the scoring queue"
    assert message.headers["task"] == "mlops.readings_score_pending"
    assert message.headers["periodic_task_name"] == "Score readings"
    purge_queues()


def test_staff_who_may_only_view_jobs_see_them_but_cannot_run_them():
    client = Client()
    client.force_login(make_staff("viewer", ["django_celery_beat.view_periodictask"]))
    page = client.get(URL)
    assert page.status_code == 200 and "Score readings" in page.content.decode()
    assert 'value="run_now"' not in page.content.decode()
    purge_queues()
    job = PeriodicTask.objects.get(name="Score readings")
    client.post(URL, {"action": "run_now", "_selected_action": [job.pk]})
    with app.connection_for_write() as connection:
        assert connection.default_channel.basic_get("scoring") is None

"""Pruning the logs: scoring runs older than SCORING_RUNS_KEEP_DAYS by the Prune scoring runs job, task results
older than CELERY_RESULT_EXPIRES_DAYS by Celery's own cleanup (which beat schedules)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from mlops.models import ScoringRun, ScoringWatermark
from mlops.tasks import scoring_runs_prune
from smartmaint.celery import app
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db


def logged(days_ago: float) -> ScoringRun:
    run = ScoringRun.objects.create(
        sensor_type="temperature",
        model_name="m",
        model_version="1",
        start=timezone.now() - timedelta(days=days_ago, minutes=10),
        end=timezone.now() - timedelta(days=days_ago),
        readings=0,
    )
    # created_at is set on insert (auto_now_add): date it back as it would have been logged.
    ScoringRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return run


def test_the_prune_job_deletes_scoring_runs_older_than_the_setting_and_no_watermark(settings):
    settings.SCORING_RUNS_KEEP_DAYS = 30
    old, older = logged(31), logged(400)
    kept = [logged(29), logged(0)]
    sensor = SensorFactory()
    ScoringWatermark.objects.create(sensor=sensor, scored_until=timezone.now() - timedelta(days=60))

    assert scoring_runs_prune.apply().get() == {"deleted": 2}

    assert set(ScoringRun.objects.values_list("pk", flat=True)) == {run.pk for run in kept}
    assert not ScoringRun.objects.filter(pk__in=[old.pk, older.pk]).exists()
    assert ScoringWatermark.objects.filter(sensor=sensor).exists()
    assert scoring_runs_prune.apply().get() == {"deleted": 0}


def test_the_prune_job_is_scheduled_daily_and_task_results_expire_by_celerys_cleanup(settings):
    job = PeriodicTask.objects.select_related("crontab").get(name="Prune scoring runs")
    fields = (job.crontab.minute, job.crontab.hour, job.crontab.day_of_month, job.crontab.month_of_year)
    assert " ".join((*fields, job.crontab.day_of_week)) == settings.JOBS_PRUNE_CRONTAB

    expires = settings.CELERY_RESULT_EXPIRES
    TaskResult.objects.create(task_id="old", status="SUCCESS")
    TaskResult.objects.create(task_id="new", status="SUCCESS")
    TaskResult.objects.filter(task_id="old").update(date_done=timezone.now() - expires - timedelta(hours=1))
    # What beat's daily celery.backend_cleanup runs, on the real result backend (the database).
    app.tasks["celery.backend_cleanup"].apply().get()
    assert set(TaskResult.objects.values_list("task_id", flat=True)) == {"new"}

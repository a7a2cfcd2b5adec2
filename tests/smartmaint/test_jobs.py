"""The periodic jobs: installed by migrate with their default schedules, then data that staff change."""

import pytest
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from smartmaint import jobs
from smartmaint.celery import app

pytestmark = pytest.mark.django_db

DEFAULT_JOBS = {
    "Score readings": ("mlops.readings_score_pending", "scoring"),
    "Alert rules": ("mlops.alerts_check_rules", "default"),
    "Alert mail": ("mlops.alerts_notify", "mail"),
    "Retrain models": ("mlops.models_retrain", "training"),
    "Prune scoring runs": ("mlops.scoring_runs_prune", "default"),
}


def test_migrate_installs_each_job_with_its_default_schedule():
    installed = {task.name: task for task in PeriodicTask.objects.select_related("interval", "crontab")}
    assert set(DEFAULT_JOBS) <= set(installed)
    for name, (task, _queue) in DEFAULT_JOBS.items():
        assert installed[name].task == task and installed[name].enabled
    scoring = installed["Score readings"]
    assert (scoring.interval.every, scoring.interval.period) == (settings.JOBS_SCORING_SECONDS, "seconds")
    # A run still queued when the next is due is dropped: the next one does the same work.
    assert scoring.expire_seconds == settings.JOBS_SCORING_SECONDS
    retrain = installed["Retrain models"].crontab
    fields = (retrain.minute, retrain.hour, retrain.day_of_month, retrain.month_of_year, retrain.day_of_week)
    assert " ".join(fields) == settings.JOBS_RETRAINING_CRONTAB
    # No queue on the job: the routes in settings decide, so moving a task to another queue is one setting.
    assert {task.queue for task in installed.values() if task.name in DEFAULT_JOBS} == {None}


def test_migrate_again_keeps_what_staff_changed_and_restores_only_a_deleted_job():
    scoring = PeriodicTask.objects.get(name="Score readings")
    scoring.interval = IntervalSchedule.objects.create(every=300, period=IntervalSchedule.SECONDS)
    scoring.enabled = False
    scoring.save()
    PeriodicTask.objects.filter(name="Alert mail").delete()

    assert jobs.jobs_install_defaults() == ["Alert mail"]

    scoring.refresh_from_db()
    assert (scoring.interval.every, scoring.enabled) == (300, False)
    assert PeriodicTask.objects.get(name="Alert mail").interval.every == settings.JOBS_ALERT_MAIL_SECONDS


def test_every_job_names_a_task_the_workers_know_routed_to_its_queue():
    app.loader.import_default_modules()
    for name, (task, queue) in DEFAULT_JOBS.items():
        assert task in app.tasks, f"{name}: {task} is not a registered task"
        route = app.amqp.router.route({}, task)
        assert route["queue"].name == queue, name


def test_a_job_takes_an_interval_or_a_crontab():
    with pytest.raises(ValueError, match="either"):
        jobs.register(name="x", task="t", description="", every=60, crontab="* * * * *")
    with pytest.raises(ValueError, match="5 fields"):
        jobs.register(name="x", task="t", description="", crontab="0 3 * *")

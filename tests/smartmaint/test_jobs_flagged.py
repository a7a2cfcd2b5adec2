"""Jobs flagged: a job whose last run failed or that finished no run for three of its periods, as the fleet
dashboard and the doctor's jobs line both show it (smartmaint.jobs.jobs_flagged)."""

import json
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from smartmaint.doctor import FAIL, OK
from smartmaint.doctor_checks import check_jobs
from smartmaint.jobs import jobs_flagged
from tests.admin.conftest import STAFF_PERMISSIONS, make_staff

pytestmark = pytest.mark.django_db
DASHBOARD = reverse("admin:index")
JOBS_PAGE = reverse("admin:django_celery_beat_periodictask_changelist")


def finished(job: str, status: str, result, *, ago: timedelta) -> None:
    done = timezone.now() - ago
    task_id = str(uuid.uuid4())
    TaskResult.objects.create(
        task_id=task_id,
        task_name=PeriodicTask.objects.get(name=job).task,
        periodic_task_name=job,
        status=status,
        result=json.dumps(result),
        date_started=done - timedelta(seconds=1),
    )
    TaskResult.objects.filter(task_id=task_id).update(date_done=done)  # auto_now on save


def sent(job: str, *, ago: timedelta) -> None:
    """Beat sent the job ``ago``; its schedule is older than that (update(): date_changed is auto_now)."""
    now = timezone.now()
    PeriodicTask.objects.filter(name=job).update(last_run_at=now - ago, date_changed=now - timedelta(days=1))


def dashboard(permissions) -> str:
    client = Client()
    client.force_login(make_staff(f"staff-{uuid.uuid4().hex[:8]}", permissions=permissions))
    return client.get(DASHBOARD).content.decode()


def test_nothing_flagged_before_beat_sends_or_while_jobs_run_on_time():
    assert jobs_flagged()[1] == []
    sent("Score readings", ago=timedelta(seconds=30))
    finished("Score readings", "SUCCESS", {"windows": 3}, ago=timedelta(minutes=2))  # two periods: not late yet
    checked, flags = jobs_flagged()
    assert flags == [] and checked == 6  # scoring, rule alerts, mail, retraining, pruning, overdue reminders
    [result] = check_jobs(connection, 5)
    assert result.status == OK and "6 enabled job(s)" in result.detail
    assert 'id="sm-flags"' not in dashboard([*STAFF_PERMISSIONS, "django_celery_beat.view_periodictask"])


def test_a_failing_job_and_a_late_one_are_flagged_on_the_dashboard_and_by_the_doctor():
    down = {"exc_type": "SMTPServerDisconnected", "exc_message": ["server closed"]}
    finished("Alert mail", "FAILURE", down, ago=timedelta(minutes=1))
    sent("Score readings", ago=timedelta(seconds=30))
    finished("Score readings", "SUCCESS", {"windows": 3}, ago=timedelta(minutes=4))  # 4 periods of 60 s ago

    flags = {flag.job: flag.problem for flag in jobs_flagged()[1]}
    assert set(flags) == {"Alert mail", "Score readings"}
    assert "last run failed" in flags["Alert mail"] and "server closed" in flags["Alert mail"]
    assert flags["Score readings"].startswith("no run finished for 3 periods of 60 s (not since ")

    [result] = check_jobs(connection, 5)
    assert result.status == FAIL
    assert "Alert mail: last run failed" in result.detail and "Score readings: no run finished" in result.detail

    page = dashboard([*STAFF_PERMISSIONS, "django_celery_beat.view_periodictask"])
    assert 'id="sm-flags"' in page and page.count('class="sm-flag"') == 2
    assert f'href="{JOBS_PAGE}?q=Alert+mail"' in page and f'href="{JOBS_PAGE}?q=Score+readings"' in page
    # Staff who may not see the jobs see no flags.
    assert 'id="sm-flags"' not in dashboard(STAFF_PERMISSIONS)


def test_a_run_that_succeeded_after_a_failure_clears_the_flag_and_a_disabled_job_is_not_checked():
    finished("Alert mail", "FAILURE", {"exc_type": "OSError", "exc_message": ["x"]}, ago=timedelta(minutes=2))
    finished("Alert mail", "SUCCESS", {"sent": 1}, ago=timedelta(minutes=1))
    finished("Alert rules", "FAILURE", {"exc_type": "OSError", "exc_message": ["y"]}, ago=timedelta(minutes=1))
    PeriodicTask.objects.filter(name="Alert rules").update(enabled=False)
    assert jobs_flagged()[1] == []

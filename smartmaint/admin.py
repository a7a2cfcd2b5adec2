"""The jobs page: django-celery-beat's periodic tasks as the console shows them, each with its schedule, last run
(start, duration, result and counts), last failure with its error and next run, from the task results
django-celery-results keeps; "Run now" for staff who may change jobs. Schedules are changed on each job's page."""

import json

from django.contrib import admin
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django_celery_beat import admin as beat_admin  # registers django-celery-beat's pages first: replaced below
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

FINISHED = ("SUCCESS", "FAILURE")
MAX_SHOWN = 160


def _error(result: str | None) -> str:
    """The error a failed task left (django-celery-results keeps it as JSON: exc_type, exc_message)."""
    try:
        data = json.loads(result or "")
    except ValueError:
        return (result or "")[:MAX_SHOWN]
    if isinstance(data, dict) and "exc_type" in data:
        message = data.get("exc_message") or []
        message = " ".join(str(part) for part in message) if isinstance(message, list | tuple) else str(message)
        return f"{data['exc_type']}: {message}"[:MAX_SHOWN]
    return str(data)[:MAX_SHOWN]


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class JobAdmin(beat_admin.PeriodicTaskAdmin):
    list_display = ("name", "enabled", "schedule", "last_run", "last_failure", "next_run")
    list_display_links = ("name",)
    actions = ("run_now", "enable_tasks", "disable_tasks")

    def get_queryset(self, request):
        runs = TaskResult.objects.filter(periodic_task_name=OuterRef("name"), status__in=FINISHED).order_by(
            "-date_done"
        )
        failures = runs.filter(status="FAILURE")
        return (
            super()
            .get_queryset(request)
            .select_related("interval", "crontab", "solar", "clocked")
            .annotate(
                run_status=Subquery(runs.values("status")[:1]),
                run_started=Subquery(runs.values("date_started")[:1]),
                run_done=Subquery(runs.values("date_done")[:1]),
                run_result=Subquery(runs.values("result")[:1]),
                failed_at=Subquery(failures.values("date_done")[:1]),
                failed_result=Subquery(failures.values("result")[:1]),
            )
        )

    @admin.display(description="schedule")
    def schedule(self, job):
        return str(job.scheduler or "")

    @admin.display(description="last run", ordering="run_done")
    def last_run(self, job):
        if job.run_done is None:
            return "never" if job.last_run_at is None else f"sent {job.last_run_at:%Y-%m-%d %H:%M}, not finished"
        duration = ""
        if job.run_started is not None:
            duration = f", {(job.run_done - job.run_started).total_seconds():.1f} s"
        if job.run_status == "FAILURE":
            outcome = f"FAILED: {_error(job.run_result)}"
        else:
            outcome = (job.run_result or "")[:MAX_SHOWN]
        return f"{timezone.localtime(job.run_done):%Y-%m-%d %H:%M:%S}{duration}; {outcome}"

    @admin.display(description="last failure", ordering="failed_at")
    def last_failure(self, job):
        if job.failed_at is None:
            return "-"
        return f"{timezone.localtime(job.failed_at):%Y-%m-%d %H:%M}: {_error(job.failed_result)}"

    @admin.display(description="next run")
    def next_run(self, job):
        if not job.enabled:
            return "disabled"
        if job.scheduler is None:
            return "-"
        if job.last_run_at is None:
            return "when beat starts (interval: one period after)"
        due = timezone.now() + job.schedule.remaining_estimate(job.last_run_at)
        return f"{timezone.localtime(max(due, timezone.now())):%Y-%m-%d %H:%M:%S}"

    @admin.action(description="Run now", permissions=["change"])
    def run_now(self, request, queryset):
        # Sent as beat sends it (its periodic task's name with it), so the run shows as the job's last run.
        return self.run_tasks(request, queryset)

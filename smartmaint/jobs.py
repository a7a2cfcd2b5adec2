"""The periodic jobs each app schedules, and their defaults, written to django-celery-beat's tables by migrate.

As with the doctor's checks (``smartmaint.doctor``), each app registers its jobs from ``AppConfig.ready()``.
migrate creates every registered job that does not exist yet, with its default schedule from settings, and never
changes one that does: from then on a schedule is data, which staff see and change in the admin (Periodic tasks),
and beat follows it without a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connections
from django.db.models import Max


@dataclass(frozen=True)
class Job:
    name: str  # the periodic task's name in the admin; its identity
    task: str  # the Celery task's registered name
    description: str
    every: int | None = None  # seconds between runs
    crontab: str | None = None  # "minute hour day-of-month month day-of-week", in TIME_ZONE
    # The job's own findings beyond failing or late (say, scoring runs that scored nothing while readings came):
    # called with using=, returns a list of JobFlag.
    flags: Callable[..., list[JobFlag]] | None = None


@dataclass(frozen=True)
class JobFlag:
    """Something wrong with a job, as the dashboard and the doctor's jobs check say it."""

    job: str  # the periodic task's name
    problem: str  # what is wrong, one line
    url: str = ""  # where to look in the admin; empty: the job on the jobs page


_registry: dict[str, Job] = {}


def register(
    *,
    name: str,
    task: str,
    description: str,
    every: int | None = None,
    crontab: str | None = None,
    flags: Callable[..., list[JobFlag]] | None = None,
) -> Job:
    """Schedule ``task`` by default every ``every`` seconds, or on ``crontab``: one of the two. ``flags``, if
    given, adds the job's own findings to ``jobs_flagged``."""
    if (every is None) == (crontab is None):
        raise ValueError(f"Job {name!r}: give either every (seconds) or crontab.")
    if crontab is not None and len(crontab.split()) != 5:
        raise ValueError(f"Job {name!r}: crontab {crontab!r} must have 5 fields (minute hour day month weekday).")
    job = Job(name=name, task=task, description=description, every=every, crontab=crontab, flags=flags)
    _registry[name] = job
    return job


def registered() -> list[Job]:
    return list(_registry.values())


def jobs_install_defaults(*, using: str = "default") -> list[str]:
    """Create each registered job missing from the database, with its default schedule; return their names.

    An interval job's run expires after one period: a run still queued when the next is due (no worker was free)
    is dropped instead of piling up, as the next run does the same work.
    """
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    if PeriodicTask._meta.db_table not in connections[using].introspection.table_names():
        return []  # django_celery_beat not migrated (yet): the next migrate installs them
    existing = set(PeriodicTask.objects.using(using).values_list("name", flat=True))
    created = []
    for job in _registry.values():
        if job.name in existing:
            continue
        schedule = {}
        if job.every is not None:
            schedule["interval"], _ = IntervalSchedule.objects.using(using).get_or_create(
                every=job.every, period=IntervalSchedule.SECONDS
            )
            schedule["expire_seconds"] = job.every
        else:
            minute, hour, day_of_month, month_of_year, day_of_week = job.crontab.split()
            schedule["crontab"], _ = CrontabSchedule.objects.using(using).get_or_create(
                minute=minute,
                hour=hour,
                day_of_month=day_of_month,
                month_of_year=month_of_year,
                day_of_week=day_of_week,
                timezone=settings.TIME_ZONE,
            )
        PeriodicTask.objects.using(using).create(name=job.name, task=job.task, description=job.description, **schedule)
        created.append(job.name)
    return created


def install_on_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate receiver (registered by smartmaint): migrate, and so `make run`, installs the default jobs."""
    jobs_install_defaults(using=using)


# --- Is the background side running? (manage.py doctor, the containers' health checks) ----------------------------


def workers_answering(*, timeout: float, destination: list[str] | None = None) -> list[str]:
    """The names of the workers (``celery@host``) that answer a ping within ``timeout`` seconds, of ``destination``
    or of all."""
    from smartmaint.celery import app

    replies = app.control.ping(destination=destination, timeout=timeout) or []
    return sorted(name for reply in replies for name in reply)


def beat_last_sent() -> datetime | None:
    """When beat last sent an enabled job, as it records it (django-celery-beat saves it every 3 minutes)."""
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask.objects.filter(enabled=True).aggregate(last=Max("last_run_at"))["last"]


LATE_PERIODS = 3  # an interval job with no run finished for this many of its periods is late


def jobs_flagged(*, using: str = "default", now: datetime | None = None) -> tuple[int, list[JobFlag]]:
    """The enabled periodic jobs checked (Celery's own housekeeping left out) and what is wrong with them: the last
    run failed (with its error), an interval job finished no run for LATE_PERIODS of its periods (once beat has
    sent it and the schedule is older than that), and each registered job's own ``flags``.

    Both the fleet dashboard and ``manage.py doctor`` (the jobs line) show these. Needs django-celery-results
    keeping results in the database (CELERY_RESULT_BACKEND "django-db"). One query for the jobs with their last
    finished run, and whatever the jobs' own flags ask.
    """
    from django.db.models import OuterRef, Subquery
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask
    from django_celery_results.models import TaskResult

    now = now or timezone.now()
    last = (
        TaskResult.objects.using(using)
        .filter(periodic_task_name=OuterRef("name"), status__in=["SUCCESS", "FAILURE"])
        .order_by("-date_done")
    )
    jobs = (
        PeriodicTask.objects.using(using)
        .filter(enabled=True)
        .exclude(task__startswith="celery.")  # Celery's own housekeeping (result cleanup)
        .select_related("interval")
        .annotate(
            last_status=Subquery(last.values("status")[:1]),
            last_done=Subquery(last.values("date_done")[:1]),
            last_result=Subquery(last.values("result")[:1]),
        )
        .order_by("name")
    )
    checked, flags = 0, []
    for job in jobs:
        checked += 1
        if job.last_status == "FAILURE":
            error = (job.last_result or "").strip().splitlines()[-1:] or [""]
            problem = f"last run failed at {job.last_done:%Y-%m-%d %H:%M} ({error[0][:200]})"
            flags.append(JobFlag(job.name, problem))
        elif job.interval is not None and job.last_run_at is not None:
            period = job.interval.schedule.run_every.total_seconds()
            finished = job.last_done
            late = LATE_PERIODS * period
            if (finished is None or (now - finished).total_seconds() > late) and (
                now - job.date_changed
            ).total_seconds() > late:
                since = "never" if finished is None else f"not since {finished:%Y-%m-%d %H:%M}"
                problem = f"no run finished for {LATE_PERIODS} periods of {period:.0f} s ({since})"
                flags.append(JobFlag(job.name, problem))
        registered_job = _registry.get(job.name)
        if registered_job is not None and registered_job.flags is not None:
            flags.extend(registered_job.flags(using=using))
    return checked, flags


def dashboard_job_flags(*, user) -> list[dict]:
    """``jobs_flagged`` for the fleet dashboard (registered with readings.selectors): each flag links to its job on
    the jobs page, or to where the job's own flag says; nothing for staff who may not view the jobs, or where task
    results are not kept in the database."""
    from urllib.parse import urlencode

    from django.urls import reverse

    if settings.CELERY_RESULT_BACKEND != "django-db" or not user.has_perm("django_celery_beat.view_periodictask"):
        return []
    jobs_page = reverse("admin:django_celery_beat_periodictask_changelist")
    _, flags = jobs_flagged()
    return [
        {"title": flag.job, "problem": flag.problem, "url": flag.url or f"{jobs_page}?{urlencode({'q': flag.job})}"}
        for flag in flags
    ]

"""The periodic jobs each app schedules, and their defaults, written to django-celery-beat's tables by migrate.

As with the doctor's checks (``smartmaint.doctor``), each app registers its jobs from ``AppConfig.ready()``.
migrate creates every registered job that does not exist yet, with its default schedule from settings, and never
changes one that does: from then on a schedule is data, which staff see and change in the admin (Periodic tasks),
and beat follows it without a restart.
"""

from __future__ import annotations

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


_registry: dict[str, Job] = {}


def register(*, name: str, task: str, description: str, every: int | None = None, crontab: str | None = None) -> Job:
    """Schedule ``task`` by default every ``every`` seconds, or on ``crontab``: one of the two."""
    if (every is None) == (crontab is None):
        raise ValueError(f"Job {name!r}: give either every (seconds) or crontab.")
    if crontab is not None and len(crontab.split()) != 5:
        raise ValueError(f"Job {name!r}: crontab {crontab!r} must have 5 fields (minute hour day month weekday).")
    job = Job(name=name, task=task, description=description, every=every, crontab=crontab)
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

"""The maintenance app's Celery tasks: thin wrappers around the services, scheduled by beat (``maintenance.apps``)."""

from celery import shared_task

from maintenance import services
from smartmaint.celery import JobTask


@shared_task(base=JobTask, name="maintenance.work_orders_remind_overdue")
def work_orders_remind_overdue() -> dict:
    """Mail the assignees of work orders past their due date, once per work order."""
    return services.work_orders_remind_overdue()

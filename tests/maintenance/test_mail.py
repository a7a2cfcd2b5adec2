"""Mail through a real SMTP server: the assignee on assignment, and once when the work order becomes overdue."""

from datetime import timedelta

import pytest
from django.utils import timezone

from maintenance.models import WorkOrder
from maintenance.services import work_order_assign, work_order_create, work_orders_remind_overdue
from maintenance.tasks import work_orders_remind_overdue as remind_task
from smartmaint import jobs
from tests.smtp_servers import smtp_server

pytestmark = pytest.mark.django_db


def use_smtp(settings, inbox) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = inbox.host, inbox.port, 10
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False


def test_assignment_mails_the_assignee_after_commit(
    settings, north_sensor, manager, technician, django_capture_on_commit_callbacks
):
    work_order = work_order_create(asset=north_sensor.asset, title="Replace seal", user=manager)
    with smtp_server() as inbox:
        use_smtp(settings, inbox)
        with django_capture_on_commit_callbacks(execute=True):
            work_order_assign(work_order=work_order, assignee=technician, user=manager)
            assert inbox.messages == []  # not before the assignment commits
        assert inbox.recipients() == [technician.email]
        message = inbox.messages[0]
        assert f"WO-{work_order.pk} assigned to you" in message.message["Subject"]
        assert "Replace seal" in message.body and f"/admin/maintenance/workorder/{work_order.pk}/" in message.body


def test_overdue_reminder_goes_once_per_work_order(settings, north_sensor, manager, technician, other_technician):
    late = work_order_create(asset=north_sensor.asset, title="Late", user=manager, assignee=technician)
    on_time = work_order_create(asset=north_sensor.asset, title="On time", user=manager, assignee=other_technician)
    unassigned = work_order_create(asset=north_sensor.asset, title="Nobody", user=manager)
    WorkOrder.objects.filter(pk__in=[late.pk, unassigned.pk]).update(due_at=timezone.now() - timedelta(hours=1))
    with smtp_server() as inbox:
        use_smtp(settings, inbox)
        assert remind_task.apply().get() == {"sent": 1, "failed": 0}  # the task, run in process
        assert work_orders_remind_overdue() == {"sent": 0, "failed": 0}  # never twice
        assert inbox.recipients() == [technician.email]
        assert "Overdue: work order" in inbox.messages[0].message["Subject"]
    late.refresh_from_db()
    assert late.overdue_reminded_at is not None
    assert WorkOrder.objects.get(pk=on_time.pk).overdue_reminded_at is None


def test_a_failed_reminder_is_tried_again(settings, north_sensor, manager, technician):
    late = work_order_create(asset=north_sensor.asset, title="Late", user=manager, assignee=technician)
    WorkOrder.objects.filter(pk=late.pk).update(due_at=timezone.now() - timedelta(hours=1))
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    assert work_orders_remind_overdue() == {"sent": 0, "failed": 1}
    with smtp_server() as inbox:
        use_smtp(settings, inbox)
        assert work_orders_remind_overdue() == {"sent": 1, "failed": 0}
        assert inbox.recipients() == [technician.email]


def test_the_reminder_is_a_scheduled_job():
    job = next(job for job in jobs.registered() if job.task == "maintenance.work_orders_remind_overdue")
    assert job.every == 900

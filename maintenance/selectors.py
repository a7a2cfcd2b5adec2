"""Reads of work orders, limited to what a person may see (their sites; a technician's own for writes)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from maintenance.choices import ACTIVE_STATUSES
from maintenance.models import WorkOrder, WorkOrderEvent
from sensors.selectors import within_user_sites


def alerts_held_open() -> QuerySet:
    """Pks of the alerts an active work order keeps open (registered with mlops.services)."""
    return WorkOrder.objects.filter(status__in=ACTIVE_STATUSES, alert__isnull=False).values("alert_id")


def work_orders_visible(*, user) -> QuerySet[WorkOrder]:
    """The work orders ``user`` may see: those of the assets of their sites (every site for superusers and
    ``UserSites.all_sites``), with what lists show of asset, sensor and assignee."""
    if not user.has_perm("maintenance.view_workorder"):
        return WorkOrder.objects.none()
    return within_user_sites(WorkOrder.objects.select_related("asset", "sensor", "assignee"), user, site="asset__site")


def work_order_can_manage(*, user, work_order: WorkOrder | None = None) -> bool:
    """May ``user`` change any work order (assign, edit, any status): maintenance managers."""
    return user.has_perm("maintenance.change_workorder")


def work_order_can_work_on(*, user, work_order: WorkOrder) -> bool:
    """May ``user`` comment, attach, change the status of and record the finding of ``work_order``: managers, and
    technicians on the work orders assigned to them. Both only within their sites."""
    if not work_orders_visible(user=user).filter(pk=work_order.pk).exists():
        return False
    if work_order_can_manage(user=user):
        return True
    return user.has_perm("maintenance.work_on_workorder") and work_order.assignee_id == user.pk


def work_orders_overdue(*, user, now: datetime | None = None) -> QuerySet[WorkOrder]:
    return work_orders_visible(user=user).overdue(now or timezone.now())


def work_order_timeline(*, work_order: WorkOrder) -> QuerySet[WorkOrderEvent]:
    return WorkOrderEvent.objects.filter(work_order=work_order).select_related("user", "assignee")

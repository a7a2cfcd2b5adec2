"""Reads of work orders, limited to what a person may see (their sites; a technician's own for writes)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.db.models import (
    Avg,
    BooleanField,
    Case,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from maintenance.choices import ACTIVE_STATUSES, FindingOutcome, WorkOrderOrigin, WorkOrderStatus
from maintenance.models import Finding, WorkOrder, WorkOrderEvent
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


def work_order_assignee_choices(*, work_order: WorkOrder) -> QuerySet:
    """The people ``work_order`` may be given (as ``maintenance.services.work_order_assign`` accepts them): active
    users who may work on work orders (technicians, managers, superusers) and see its site, by name. Two queries;
    the site rule is ``sensors.selectors.user_sites``'s, applied to each candidate's row."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    model = get_user_model()
    permissions = Permission.objects.filter(
        content_type__app_label="maintenance", codename__in=["work_on_workorder", "change_workorder"]
    )
    in_group = Exists(model.groups.through.objects.filter(**{f"{model._meta.model_name}_id": OuterRef("pk")}))
    rows = (
        model.objects.filter(
            Q(is_superuser=True) | Q(groups__permissions__in=permissions) | Q(user_permissions__in=permissions),
            is_active=True,
        )
        .annotate(in_group=in_group)
        .values("pk", "is_superuser", "site_access__pk", "site_access__all_sites", "site_access__sites", "in_group")
        .distinct()
    )
    site = work_order.asset.site
    chosen = set()
    for row in rows:
        if row["is_superuser"] or row["site_access__all_sites"]:
            chosen.add(row["pk"])
        elif row["site_access__pk"] is not None:
            if site in (row["site_access__sites"] or []):
                chosen.add(row["pk"])
        elif not row["in_group"]:
            chosen.add(row["pk"])  # no group and no sites given: not limited (user_sites)
    return model.objects.filter(pk__in=chosen).order_by("first_name", "last_name", model.USERNAME_FIELD)


def work_orders_overdue(*, user, now: datetime | None = None) -> QuerySet[WorkOrder]:
    return work_orders_visible(user=user).overdue(now or timezone.now())


def work_order_timeline(*, work_order: WorkOrder) -> QuerySet[WorkOrderEvent]:
    return WorkOrderEvent.objects.filter(work_order=work_order).select_related("user", "assignee")


def _duration(expression) -> ExpressionWrapper:
    return ExpressionWrapper(expression, output_field=DurationField())


def asset_maintenance_figures(asset, start: datetime, end: datetime) -> dict:
    """An asset's maintenance figures over [start, end), in one query (docs/admin.md, "Maintenance figures").

    The findings of the asset's done work orders (a cancelled one has none that count) belong to the period
    by when the fault started (confirmed faults) or, for false alarms, when the work order was created.
    Failures are the confirmed faults; MTBF the period over the failures; MTTR the mean of in progress (or
    created) to done of their work orders; downtime the sum of their fault start..end, or in progress..done where
    the end was not recorded; the false-alarm rate the false alarms among the findings of the work orders raised
    from an alert or an anomaly."""
    confirmed = Q(outcome=FindingOutcome.CONFIRMED_FAULT)
    from_models = Q(work_order__origin__in=[WorkOrderOrigin.ALERT, WorkOrderOrigin.ANOMALY])
    work_started = Coalesce("work_order__started_at", "work_order__created_at")
    findings = Finding.objects.filter(work_order__asset=asset, work_order__status=WorkOrderStatus.DONE)
    if connection.vendor == "postgresql":
        # The asset's done work orders as an array the findings are looked up by (work_order_id = ANY(ARRAY(...))):
        # joined as above, the planner hashes every finding for a busy asset (a sequential scan of 70,000 findings
        # in bench/maintenance.py: 57 ms, 13 ms this way).
        from django.contrib.postgres.expressions import ArraySubquery

        done = WorkOrder.objects.filter(asset=asset, status=WorkOrderStatus.DONE).order_by().values("pk")
        in_done = Func(
            F("work_order_id"),
            ArraySubquery(done),
            template="%(expressions)s)",
            arg_joiner=" = ANY(",
            output_field=BooleanField(),
        )
        findings = findings.filter(in_done)
    row = (
        findings.annotate(at=Coalesce("fault_start", "work_order__created_at"))
        .filter(at__gte=start, at__lt=end)
        .aggregate(
            failures=Count("pk", filter=confirmed),
            repair=Avg(_duration(F("work_order__done_at") - work_started), filter=confirmed),
            downtime=Sum(
                Case(
                    When(fault_end__isnull=False, then=_duration(F("fault_end") - F("fault_start"))),
                    default=_duration(F("work_order__done_at") - work_started),
                    output_field=DurationField(),
                ),
                filter=confirmed,
            ),
            model_findings=Count("pk", filter=from_models),
            false_alarms=Count("pk", filter=from_models & Q(outcome=FindingOutcome.FALSE_ALARM)),
        )
    )
    failures = row["failures"]
    mtbf = (end - start) / failures if failures else None
    downtime = row["downtime"] or timedelta(0)
    return {
        "start": start,
        "end": end,
        "failures": failures,
        "mtbf": mtbf,
        "mtbf_hours": mtbf.total_seconds() / 3600 if mtbf else None,
        "mttr": row["repair"],
        "mttr_hours": row["repair"].total_seconds() / 3600 if row["repair"] is not None else None,
        "downtime": downtime,
        "downtime_hours": downtime.total_seconds() / 3600,
        "model_findings": row["model_findings"],
        "false_alarms": row["false_alarms"],
        "false_alarm_rate": row["false_alarms"] / row["model_findings"] if row["model_findings"] else None,
    }

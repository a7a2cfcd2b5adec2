"""Work orders: the repair an alert or anomaly calls for, its timeline, attachments and the finding that feeds
labels back to training."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from maintenance.choices import (
    ACTIVE_STATUSES,
    FindingOutcome,
    WorkOrderEventKind,
    WorkOrderOrigin,
    WorkOrderPriority,
    WorkOrderStatus,
)
from mlops.models import Alert, Anomaly
from readings.models import FaultLabel
from sensors.models import Asset, Sensor

# The field that records when a work order last entered each status.
STATUS_ENTERED = {
    WorkOrderStatus.OPEN: "created_at",
    WorkOrderStatus.ASSIGNED: "assigned_at",
    WorkOrderStatus.IN_PROGRESS: "started_at",
    WorkOrderStatus.ON_HOLD: "on_hold_at",
    WorkOrderStatus.DONE: "done_at",
    WorkOrderStatus.CANCELLED: "cancelled_at",
}


class WorkOrderQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status__in=ACTIVE_STATUSES)

    def overdue(self, now):
        return self.active().filter(due_at__lt=now)


class WorkOrder(models.Model):
    """A piece of maintenance work on an asset: raised from an alert, an anomaly, or by hand."""

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="work_orders")
    sensor = models.ForeignKey(Sensor, null=True, blank=True, on_delete=models.SET_NULL, related_name="work_orders")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    priority = models.PositiveSmallIntegerField(choices=WorkOrderPriority.choices, default=WorkOrderPriority.MEDIUM)
    status = models.CharField(max_length=16, choices=WorkOrderStatus.choices, default=WorkOrderStatus.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="work_orders"
    )
    due_at = models.DateTimeField(help_text="Set from the priority by the service levels (WORK_ORDER_SERVICE_LEVELS).")
    origin = models.CharField(max_length=16, choices=WorkOrderOrigin.choices, default=WorkOrderOrigin.MANUAL)
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="work_orders")
    anomaly = models.ForeignKey(Anomaly, null=True, blank=True, on_delete=models.SET_NULL, related_name="work_orders")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # When it last entered each status (STATUS_ENTERED); created_at is when it opened.
    created_at = models.DateTimeField(auto_now_add=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField("in progress since", null=True, blank=True)
    on_hold_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    overdue_reminded_at = models.DateTimeField(
        null=True, blank=True, help_text="When the assignee was reminded that it is overdue (once per work order)."
    )

    objects = WorkOrderQuerySet.as_manager()

    class Meta:
        ordering = ["priority", "due_at", "pk"]
        permissions = [("work_on_workorder", "Can work on own work orders (comments, attachments, status, finding)")]
        indexes = [
            models.Index(fields=["status", "priority", "due_at"], name="workorder_status_prio_due_idx"),
            # The list's order (most urgent, soonest due first): its first page without sorting every work order.
            models.Index(fields=["priority", "due_at", "id"], name="workorder_prio_due_idx"),
            # An asset's open work orders in that order and its past ones newest first (the asset page), without
            # the planner taking the list's index above and filtering a busy asset's rows out of it.
            models.Index(fields=["asset", "priority", "due_at", "id"], name="workorder_asset_prio_due_idx"),
            models.Index(fields=["asset", "updated_at"], name="workorder_asset_updated_idx"),
            models.Index(fields=["asset", "status"], name="workorder_asset_status_idx"),
            models.Index(fields=["assignee", "status"], name="workorder_assignee_status_idx"),
        ]

    def __str__(self) -> str:
        return f"WO-{self.pk}: {self.title}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class WorkOrderEvent(models.Model):
    """One entry of a work order's timeline: created, a comment, a status change, an assignment, a file, a finding."""

    work_order = models.ForeignKey(WorkOrder, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=WorkOrderEventKind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)
    text = models.TextField(blank=True, help_text="The comment, or what changed.")
    from_status = models.CharField(max_length=16, choices=WorkOrderStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=WorkOrderStatus.choices, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["work_order", "at"], name="workorderevent_wo_at_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on WO-{self.work_order_id} at {self.at:%Y-%m-%d %H:%M}"


def attachment_path(instance, filename: str) -> str:
    return f"attachments/work-orders/{instance.work_order_id}/{filename}"


class Attachment(models.Model):
    """A photo or document of a work order, kept in the default storage (S3 or local media), served by a view
    that checks who asks (maintenance.views.attachment_download)."""

    work_order = models.ForeignKey(WorkOrder, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, max_length=300)
    name = models.CharField(max_length=200, help_text="The file's name, sanitised.")
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["uploaded_at", "pk"]

    def __str__(self) -> str:
        return self.name


class Finding(models.Model):
    """What the technician found: a fault confirmed (its kind and start) or a false alarm; cause, action, time
    and parts. It becomes a fault label (``label``) that the next training reads."""

    work_order = models.OneToOneField(WorkOrder, on_delete=models.CASCADE, related_name="finding")
    outcome = models.CharField(max_length=16, choices=FindingOutcome.choices)
    fault_kind = models.CharField(max_length=16, blank=True, help_text="The fault's kind, when one was confirmed.")
    fault_start = models.DateTimeField(null=True, blank=True, help_text="When the fault started.")
    fault_end = models.DateTimeField(null=True, blank=True, help_text="When it ended (empty: when recorded).")
    cause = models.TextField(blank=True)
    action = models.TextField("action taken", blank=True)
    time_spent_minutes = models.PositiveIntegerField(default=0)
    parts_used = models.TextField(blank=True, help_text="Parts used, one per line.")
    label = models.ForeignKey(FaultLabel, null=True, blank=True, on_delete=models.SET_NULL, related_name="findings")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(outcome=FindingOutcome.CONFIRMED_FAULT)
                | (~Q(fault_kind="") & Q(fault_start__isnull=False)),
                name="finding_confirmed_fault_has_kind_start",
            ),
            models.CheckConstraint(
                condition=Q(fault_end__isnull=True) | Q(fault_start__isnull=True) | Q(fault_end__gte=F("fault_start")),
                name="finding_fault_end_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} on WO-{self.work_order_id}"

from django.db import models


class WorkOrderStatus(models.TextChoices):
    OPEN = "open", "Open"
    ASSIGNED = "assigned", "Assigned"
    IN_PROGRESS = "in_progress", "In progress"
    ON_HOLD = "on_hold", "On hold"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


# The statuses a work order may move to from each status (maintenance.services.work_order_set_status). Done needs
# a finding first; recording one completes the work order (work_order_record_finding).
TRANSITIONS: dict[str, frozenset[str]] = {
    WorkOrderStatus.OPEN: frozenset({WorkOrderStatus.ASSIGNED, WorkOrderStatus.CANCELLED}),
    WorkOrderStatus.ASSIGNED: frozenset(
        {WorkOrderStatus.OPEN, WorkOrderStatus.IN_PROGRESS, WorkOrderStatus.ON_HOLD, WorkOrderStatus.CANCELLED}
    ),
    WorkOrderStatus.IN_PROGRESS: frozenset({WorkOrderStatus.ON_HOLD, WorkOrderStatus.DONE, WorkOrderStatus.CANCELLED}),
    WorkOrderStatus.ON_HOLD: frozenset({WorkOrderStatus.IN_PROGRESS, WorkOrderStatus.CANCELLED}),
    WorkOrderStatus.DONE: frozenset(),
    WorkOrderStatus.CANCELLED: frozenset(),
}
ACTIVE_STATUSES = [WorkOrderStatus.OPEN, WorkOrderStatus.ASSIGNED, WorkOrderStatus.IN_PROGRESS, WorkOrderStatus.ON_HOLD]
CLOSED_STATUSES = [WorkOrderStatus.DONE, WorkOrderStatus.CANCELLED]


class WorkOrderPriority(models.IntegerChoices):
    """Lower is more urgent, so that sorting by priority puts the urgent work first."""

    URGENT = 1, "Urgent"
    HIGH = 2, "High"
    MEDIUM = 3, "Medium"
    LOW = 4, "Low"


# An alert's severity as the priority of the work order raised from it.
SEVERITY_PRIORITY = {
    "critical": WorkOrderPriority.URGENT,
    "warning": WorkOrderPriority.HIGH,
    "info": WorkOrderPriority.MEDIUM,
}


class WorkOrderOrigin(models.TextChoices):
    ALERT = "alert", "Alert"
    ANOMALY = "anomaly", "Anomaly"
    MANUAL = "manual", "By hand"


class WorkOrderEventKind(models.TextChoices):
    CREATED = "created", "Created"
    COMMENT = "comment", "Comment"
    STATUS = "status", "Status change"
    ASSIGNMENT = "assignment", "Assignment"
    ATTACHMENT = "attachment", "Attachment"
    FINDING = "finding", "Finding"
    EDIT = "edit", "Edited"


class FindingOutcome(models.TextChoices):
    CONFIRMED_FAULT = "confirmed_fault", "Fault confirmed"
    FALSE_ALARM = "false_alarm", "False alarm"


class MaintenanceGroup(models.TextChoices):
    """The groups the data migration creates (docs/admin.md, "People and permissions")."""

    MANAGER = "Maintenance manager", "Maintenance manager"
    TECHNICIAN = "Technician", "Technician"
    VIEWER = "Viewer", "Viewer"

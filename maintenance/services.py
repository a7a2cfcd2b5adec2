"""Writes to work orders: raising them from alerts and anomalies, the status workflow, assignment (with mail),
comments, attachments, the finding that becomes a fault label, and the overdue reminders."""

from __future__ import annotations

import logging
import os
import unicodedata
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import get_valid_filename

from maintenance.choices import (
    ACTIVE_STATUSES,
    CLOSED_STATUSES,
    SEVERITY_PRIORITY,
    TRANSITIONS,
    FindingOutcome,
    WorkOrderEventKind,
    WorkOrderOrigin,
    WorkOrderPriority,
    WorkOrderStatus,
)
from maintenance.models import STATUS_ENTERED, Attachment, Finding, WorkOrder, WorkOrderEvent
from mlops.choices import AlertStatus
from mlops.models import Alert, Anomaly
from mlops.services import alert_acknowledge, alert_resolve
from readings.choices import FaultKind, FaultSource
from readings.models import FaultLabel
from sensors.models import Asset, Sensor

logger = logging.getLogger(__name__)


# The statuses in which the finding may be recorded (recording it completes the work order).
FINDING_STATUSES = (WorkOrderStatus.ASSIGNED, WorkOrderStatus.IN_PROGRESS, WorkOrderStatus.ON_HOLD)


class WorkOrderError(ValidationError):
    """A change the workflow does not allow; the message says why and what to do."""


def work_order_due(*, priority: int, start: datetime) -> datetime:
    """The due date of a work order of ``priority`` created at ``start``: WORK_ORDER_SERVICE_LEVELS hours later."""
    key = WorkOrderPriority(priority).name.lower()
    return start + timedelta(hours=settings.WORK_ORDER_SERVICE_LEVELS[key])


def _event(work_order: WorkOrder, kind: str, user, **fields) -> WorkOrderEvent:
    return WorkOrderEvent.objects.create(work_order=work_order, kind=kind, user=user, **fields)


def _user_or_none(user):
    return user if user is not None and getattr(user, "pk", None) else None


@transaction.atomic
def work_order_create(
    *,
    asset: Asset,
    title: str,
    user=None,
    sensor: Sensor | None = None,
    description: str = "",
    priority: int = WorkOrderPriority.MEDIUM,
    origin: str = WorkOrderOrigin.MANUAL,
    alert: Alert | None = None,
    anomaly: Anomaly | None = None,
    assignee=None,
) -> WorkOrder:
    if sensor is not None and sensor.asset_id != asset.pk:
        raise WorkOrderError(f"Sensor {sensor} is not on asset {asset.code}.")
    now = timezone.now()
    work_order = WorkOrder.objects.create(
        asset=asset,
        sensor=sensor,
        title=title.strip()[:200],
        description=description,
        priority=priority,
        origin=origin,
        alert=alert,
        anomaly=anomaly,
        due_at=work_order_due(priority=priority, start=now),
        created_by=_user_or_none(user),
    )
    _event(
        work_order,
        WorkOrderEventKind.CREATED,
        _user_or_none(user),
        text=f"Raised from {work_order.get_origin_display().lower()}.",
        to_status=WorkOrderStatus.OPEN,
    )
    if assignee is not None:
        work_order_assign(work_order=work_order, assignee=assignee, user=user)
    return work_order


def _active_for(**link) -> WorkOrder | None:
    return WorkOrder.objects.filter(status__in=ACTIVE_STATUSES, **link).order_by("pk").first()


@transaction.atomic
def work_order_raise_from_alert(*, alert: Alert, user=None) -> tuple[WorkOrder, bool]:
    """One click on an alert: a work order pre-filled from it (asset, sensor, priority from its severity, its
    anomaly), or the active one it already has. The alert is acknowledged, and stays open until the work order is
    done or cancelled. Returns (work order, created)."""
    alert = Alert.objects.select_for_update(of=("self",)).select_related("sensor__asset", "anomaly").get(pk=alert.pk)
    existing = _active_for(alert=alert)
    if existing is not None:
        return existing, False
    if alert.status == AlertStatus.RESOLVED:
        raise WorkOrderError("This alert is resolved already; raise a work order by hand if work is still needed.")
    link = f"{settings.SITE_URL}{reverse('admin:mlops_alert_change', args=[alert.pk])}"
    work_order = work_order_create(
        asset=alert.sensor.asset,
        sensor=alert.sensor,
        title=alert.title,
        description=f"{alert.detail}\n\nAlert: {link}".strip(),
        priority=SEVERITY_PRIORITY.get(alert.severity, WorkOrderPriority.MEDIUM),
        origin=WorkOrderOrigin.ALERT,
        alert=alert,
        anomaly=alert.anomaly,
        user=user,
    )
    if _user_or_none(user) is not None:
        alert_acknowledge(alert=alert, user=user)
    return work_order, True


@transaction.atomic
def work_order_raise_from_anomaly(*, anomaly: Anomaly, user=None) -> tuple[WorkOrder, bool]:
    """One click on an anomaly: as from its alert when it opened one (still unresolved), else from the anomaly
    itself (priority high above ANOMALY_ALERT_THRESHOLD, medium below). Returns (work order, created)."""
    alert = anomaly.alerts.exclude(status=AlertStatus.RESOLVED).order_by("-pk").first()
    if alert is not None:
        return work_order_raise_from_alert(alert=alert, user=user)
    existing = _active_for(anomaly=anomaly)
    if existing is not None:
        return existing, False
    from mlops.services import anomaly_title, anomaly_why

    sensor = Sensor.objects.select_related("asset").get(pk=anomaly.sensor_id)
    link = f"{settings.SITE_URL}{reverse('admin:mlops_anomaly_change', args=[anomaly.pk])}"
    priority = WorkOrderPriority.HIGH if anomaly.score >= settings.ANOMALY_ALERT_THRESHOLD else WorkOrderPriority.MEDIUM
    work_order = work_order_create(
        asset=sensor.asset,
        sensor=sensor,
        title=anomaly_title(anomaly),
        description=f"{anomaly_why(anomaly)}\n\nAnomaly: {link}".strip(),
        priority=priority,
        origin=WorkOrderOrigin.ANOMALY,
        anomaly=anomaly,
        user=user,
    )
    return work_order, True


def _close_alert(work_order: WorkOrder, user) -> None:
    """A work order done or cancelled closes its alert, unless another active work order still holds it."""
    if work_order.alert_id is None:
        return
    if WorkOrder.objects.filter(alert_id=work_order.alert_id, status__in=ACTIVE_STATUSES).exists():
        return
    alert = Alert.objects.select_for_update().get(pk=work_order.alert_id)
    alert_resolve(alert=alert, user=_user_or_none(user), force=True)


def _enter(work_order: WorkOrder, status: str, user, *, text: str = "") -> None:
    before = work_order.status
    now = timezone.now()
    work_order.status = status
    setattr(work_order, STATUS_ENTERED[status], now)
    work_order.save(update_fields=["status", STATUS_ENTERED[status], "updated_at"])
    _event(work_order, WorkOrderEventKind.STATUS, _user_or_none(user), from_status=before, to_status=status, text=text)
    if status in CLOSED_STATUSES:
        _close_alert(work_order, user)


def _locked(work_order: WorkOrder) -> WorkOrder:
    return WorkOrder.objects.select_for_update().get(pk=work_order.pk)


@transaction.atomic
def work_order_set_status(*, work_order: WorkOrder, status: str, user=None, note: str = "") -> WorkOrder:
    """Move ``work_order`` to ``status`` along TRANSITIONS; refused otherwise. Assigned needs an assignee, done a
    finding (work_order_record_finding completes it). Done or cancelled closes the linked alert."""
    work_order = _locked(work_order)
    if status not in WorkOrderStatus.values:
        raise WorkOrderError(f"Unknown status {status!r}; use one of {', '.join(WorkOrderStatus.values)}.")
    if status == work_order.status:
        return work_order
    if status not in TRANSITIONS[work_order.status]:
        allowed = ", ".join(sorted(TRANSITIONS[work_order.status])) or "none (it is closed)"
        raise WorkOrderError(
            f"A work order {work_order.get_status_display().lower()} cannot become "
            f"{WorkOrderStatus(status).label.lower()}; allowed: {allowed}.",
            code="transition",
        )
    if status == WorkOrderStatus.ASSIGNED and work_order.assignee_id is None:
        raise WorkOrderError("Assign someone first: assigning moves an open work order to assigned.", code="transition")
    if status == WorkOrderStatus.DONE and not Finding.objects.filter(work_order=work_order).exists():
        raise WorkOrderError("Record the finding first: recording it completes the work order.", code="transition")
    _enter(work_order, status, user, text=note)
    return work_order


@transaction.atomic
def work_order_edit(*, work_order: WorkOrder, user=None, **changes) -> WorkOrder:
    """Change the title, description or priority (a manager's edits); a new priority sets the due date from its
    service level, counted from the work order's creation."""
    unknown = set(changes) - {"title", "description", "priority"}
    if unknown:
        raise WorkOrderError(f"Cannot edit {', '.join(sorted(unknown))} here.")
    work_order = _locked(work_order)
    changed = [name for name, value in changes.items() if getattr(work_order, name) != value]
    if not changed:
        return work_order
    for name in changed:
        setattr(work_order, name, changes[name])
    fields = [*changed, "updated_at"]
    if "priority" in changed:
        work_order.due_at = work_order_due(priority=work_order.priority, start=work_order.created_at)
        fields.append("due_at")
    work_order.save(update_fields=fields)
    priority = f" (priority {work_order.get_priority_display().lower()})" if "priority" in changed else ""
    _event(work_order, WorkOrderEventKind.EDIT, _user_or_none(user), text=f"Edited {', '.join(changed)}{priority}.")
    return work_order


@transaction.atomic
def work_order_assign(*, work_order: WorkOrder, assignee, user=None) -> WorkOrder:
    """Give ``work_order`` to ``assignee`` (None: take it back). An open work order becomes assigned, an assigned
    one with nobody open again. The assignee is mailed once the change commits."""
    work_order = _locked(work_order)
    if not work_order.is_active:
        raise WorkOrderError("A work order that is done or cancelled cannot be reassigned.", code="transition")
    if assignee is not None:
        from maintenance.selectors import work_orders_visible

        if not assignee.is_active:
            raise WorkOrderError(f"{assignee} is not an active user.")
        may_work = assignee.has_perm("maintenance.work_on_workorder") or assignee.has_perm(
            "maintenance.change_workorder"
        )
        if not may_work or not work_orders_visible(user=assignee).filter(pk=work_order.pk).exists():
            raise WorkOrderError(f"{assignee} cannot work on this work order (a technician or manager of its site).")
    if (assignee.pk if assignee is not None else None) == work_order.assignee_id:
        return work_order
    work_order.assignee = assignee
    work_order.save(update_fields=["assignee", "updated_at"])
    text = f"Assigned to {assignee.get_full_name() or assignee.get_username()}." if assignee else "Unassigned."
    _event(work_order, WorkOrderEventKind.ASSIGNMENT, _user_or_none(user), assignee=assignee, text=text)
    if assignee is not None and work_order.status == WorkOrderStatus.OPEN:
        _enter(work_order, WorkOrderStatus.ASSIGNED, user)
    elif assignee is None and work_order.status == WorkOrderStatus.ASSIGNED:
        _enter(work_order, WorkOrderStatus.OPEN, user)
    if assignee is not None and assignee.email:
        pk = work_order.pk
        transaction.on_commit(lambda: work_order_mail_assignment(work_order_id=pk))
    return work_order


@transaction.atomic
def work_order_comment(*, work_order: WorkOrder, user, text: str) -> WorkOrderEvent:
    text = text.strip()
    if not text:
        raise WorkOrderError("A comment needs some text.")
    return _event(work_order, WorkOrderEventKind.COMMENT, _user_or_none(user), text=text)


def attachment_clean_name(name: str) -> str:
    """A file name safe anywhere: no directories, ASCII letters, digits, dots, dashes and underscores only,
    at most 100 characters with its extension kept."""
    name = os.path.basename(name.replace("\\", "/"))
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    try:
        name = get_valid_filename(name)
    except Exception:  # SuspiciousFileOperation: nothing usable left ("..", "")
        name = ""
    name = name.lstrip(".") or "file"
    stem, ext = os.path.splitext(name)
    return f"{stem[: 100 - len(ext[:12])]}{ext[:12]}"


@transaction.atomic
def work_order_attach(*, work_order: WorkOrder, user, file: UploadedFile) -> Attachment:
    """Store ``file`` with the work order in the default storage (S3 or local media), after checking its size
    (ATTACHMENT_MAX_BYTES) and type (ATTACHMENT_CONTENT_TYPES); its name is sanitised."""
    if file.size > settings.ATTACHMENT_MAX_BYTES:
        raise WorkOrderError(
            f"The file is {file.size:,} bytes; at most {settings.ATTACHMENT_MAX_BYTES:,} are accepted.",
            code="too_large",
        )
    content_type = (file.content_type or "").split(";")[0].strip().lower()
    if content_type not in settings.ATTACHMENT_CONTENT_TYPES:
        raise WorkOrderError(
            f"Files of type {content_type or 'unknown'} are not accepted; send one of "
            f"{', '.join(settings.ATTACHMENT_CONTENT_TYPES)}.",
            code="content_type",
        )
    name = attachment_clean_name(file.name or "")
    attachment = Attachment(
        work_order=work_order, name=name, content_type=content_type, size=file.size, uploaded_by=_user_or_none(user)
    )
    attachment.file.save(name, file, save=False)
    attachment.save()
    _event(work_order, WorkOrderEventKind.ATTACHMENT, _user_or_none(user), text=f"Attached {name}.")
    return attachment


def _origin_range(work_order: WorkOrder) -> tuple[datetime | None, datetime | None]:
    """The span the work order is about: its anomaly's, else its alert's (opened to last seen)."""
    if work_order.anomaly_id is not None:
        anomaly = work_order.anomaly
        return anomaly.start, anomaly.end
    if work_order.alert_id is not None:
        alert = work_order.alert
        return alert.opened_at - timedelta(hours=1), max(alert.last_seen_at, alert.opened_at)
    return None, None


def _finding_labels(work_order: WorkOrder, *, kind: str, start: datetime, end: datetime) -> list[FaultLabel]:
    """The fault labels (source: staff) a finding over [start, end] makes: on the work order's sensor, or, when it
    has none, on every sensor of its asset (docs/mlops.md, "Findings on an asset").

    Labels are per sensor (FaultLabel has no asset-level form) and the models read them so: the normal model of
    the asset over all its sensors, the detectors per sensor. A false alarm on the asset says the whole machine
    ran normally, so every sensor gets the "normal" label: the asset model takes the range back into its
    baseline, the detectors count every sensor's windows there as negatives. A confirmed fault on the asset says
    the machine was faulty but not which signal showed it: labelling every sensor with the fault's kind would
    teach the detectors positives on signals that may show nothing, so every sensor gets a "degradation" label
    instead, the kind that already means "the machine, not the sensor": left out of the normal baseline and out
    of the detectors' training and evaluation, neither a fault to find nor normal. The finding keeps the kind the
    technician recorded (and the asset's failure figures count it)."""
    if work_order.sensor_id is not None:
        sensor_pks = [work_order.sensor_id]
    else:
        sensor_pks = list(
            Sensor.objects.filter(asset_id=work_order.asset_id).order_by("pk").values_list("pk", flat=True)
        )
        if kind != FaultKind.NORMAL:
            kind = FaultKind.DEGRADATION
    return [
        FaultLabel.objects.update_or_create(
            sensor_id=pk, kind=kind, start=start, defaults={"end": end, "source": FaultSource.STAFF}
        )[0]
        for pk in sensor_pks
    ]


@transaction.atomic
def work_order_record_finding(
    *,
    work_order: WorkOrder,
    user,
    outcome: str,
    fault_kind: str = "",
    fault_start: datetime | None = None,
    fault_end: datetime | None = None,
    cause: str = "",
    action: str = "",
    time_spent_minutes: int = 0,
    parts_used: str = "",
) -> Finding:
    """Record what was found and complete the work order (done), which closes its alert.

    A confirmed fault (its kind and start) becomes a fault label of the work order's sensor (source: staff); a
    false alarm a "normal" label over the range of the alert or anomaly (or the one given). The next
    ``train_models`` learns from both: the fault as a positive, the false alarm as normal operation. A work order
    without a sensor labels every sensor of its asset (see ``_finding_labels``); the finding links the first.
    """
    work_order = _locked(work_order)
    if work_order.status not in FINDING_STATUSES:
        raise WorkOrderError(
            f"A finding is recorded on an assigned, in-progress or on-hold work order, not one "
            f"{work_order.get_status_display().lower()}.",
            code="transition",
        )
    if Finding.objects.filter(work_order=work_order).exists():
        raise WorkOrderError("This work order has its finding already.", code="transition")
    if outcome not in FindingOutcome.values:
        raise WorkOrderError(f"Unknown outcome {outcome!r}; use one of {', '.join(FindingOutcome.values)}.")
    origin_start, origin_end = _origin_range(work_order)
    now = timezone.now()
    if outcome == FindingOutcome.CONFIRMED_FAULT:
        if fault_kind not in FaultKind.values or fault_kind == FaultKind.NORMAL:
            kinds = ", ".join(kind for kind in FaultKind.values if kind != FaultKind.NORMAL)
            raise WorkOrderError(f"A confirmed fault needs its kind, one of {kinds}.")
        if fault_start is None:
            raise WorkOrderError("A confirmed fault needs the time it started.")
        kind = fault_kind
        start, end = fault_start, fault_end or max(origin_end or now, fault_start)
    else:
        kind = FaultKind.NORMAL
        fault_kind = ""
        start, end = fault_start or origin_start, fault_end or origin_end
        if start is not None and end is None:
            end = max(now, start)
    if start is not None and end is not None and end < start:
        raise WorkOrderError("The end of the range must not come before its start.")
    labels = _finding_labels(work_order, kind=kind, start=start, end=end) if start is not None else []
    label = labels[0] if labels else None
    finding = Finding.objects.create(
        work_order=work_order,
        outcome=outcome,
        fault_kind=fault_kind,
        fault_start=start,
        fault_end=end,
        cause=cause,
        action=action,
        time_spent_minutes=time_spent_minutes,
        parts_used=parts_used,
        label=label,
        recorded_by=_user_or_none(user),
    )
    _event(
        work_order,
        WorkOrderEventKind.FINDING,
        _user_or_none(user),
        text=f"{finding.get_outcome_display()}. {cause}".strip(),
    )
    _enter(work_order, WorkOrderStatus.DONE, user)
    return finding


# --- Mail ---------------------------------------------------------------------------------------------------------


def _link(work_order: WorkOrder) -> str:
    return f"{settings.SITE_URL}{reverse('admin:maintenance_workorder_change', args=[work_order.pk])}"


def _message(work_order: WorkOrder, *, subject: str, intro: str) -> EmailMessage:
    return EmailMessage(
        subject=f"[Smart Maintenance] {subject}",
        body=f"{intro}\n\n{work_order.title}\nAsset: {work_order.asset}\n"
        f"Priority: {work_order.get_priority_display()}\nDue: {work_order.due_at:%Y-%m-%d %H:%M} UTC\n"
        f"{work_order.description}\n\n{_link(work_order)}\n",
        to=[work_order.assignee.email],
    )


def work_order_mail_assignment(*, work_order_id: int) -> bool:
    """Mail the assignee of a work order that it is theirs; False when there is no one to mail or sending failed
    (logged: the assignment stands, the work order lists it)."""
    work_order = WorkOrder.objects.select_related("asset", "assignee").filter(pk=work_order_id).first()
    if work_order is None or work_order.assignee is None or not work_order.assignee.email:
        return False
    try:
        _message(
            work_order, subject=f"Work order WO-{work_order.pk} assigned to you", intro="A work order is yours:"
        ).send()
    except Exception as exc:  # SMTP down or refusing: the assignment itself is done
        logger.warning("Work order %s: assignment mail not sent: %s", work_order.pk, exc)
        return False
    return True


def work_orders_remind_overdue(*, now: datetime | None = None) -> dict[str, int]:
    """Mail the assignee of each active work order past its due date, once per work order.

    Each is claimed (``overdue_reminded_at`` set by a conditional update) before it is mailed, so overlapping runs
    never remind twice; a send that fails gives the claim back for the next run.
    """
    now = now or timezone.now()
    due = (
        WorkOrder.objects.overdue(now)
        .filter(overdue_reminded_at__isnull=True, assignee__isnull=False)
        .exclude(assignee__email="")
        .values_list("pk", flat=True)
    )
    sent = failed = 0
    for pk in list(due):
        if not WorkOrder.objects.filter(pk=pk, overdue_reminded_at__isnull=True).update(overdue_reminded_at=now):
            continue  # another run has it
        work_order = WorkOrder.objects.select_related("asset", "assignee").get(pk=pk)
        try:
            _message(
                work_order,
                subject=f"Overdue: work order WO-{work_order.pk}",
                intro=f"This work order was due {work_order.due_at:%Y-%m-%d %H:%M} UTC and is still "
                f"{work_order.get_status_display().lower()}:",
            ).send()
            sent += 1
        except Exception as exc:
            logger.warning("Work order %s: overdue reminder not sent: %s", pk, exc)
            WorkOrder.objects.filter(pk=pk).update(overdue_reminded_at=None)
            failed += 1
    return {"sent": sent, "failed": failed}

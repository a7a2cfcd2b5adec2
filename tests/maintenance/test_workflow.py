"""The work order workflow: raised from an alert or anomaly in one click, linked both ways; only allowed status
changes; the timeline; the finding becomes a label; the alert stays open until the work order closes."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from maintenance.choices import FindingOutcome, WorkOrderEventKind, WorkOrderOrigin, WorkOrderPriority, WorkOrderStatus
from maintenance.models import WorkOrder
from maintenance.services import (
    WorkOrderError,
    attachment_clean_name,
    work_order_assign,
    work_order_comment,
    work_order_create,
    work_order_raise_from_alert,
    work_order_raise_from_anomaly,
    work_order_record_finding,
    work_order_set_status,
)
from mlops.choices import AlertStatus
from mlops.services import alert_resolve, alerts_check_rules
from readings.choices import FaultKind, FaultSource
from readings.models import FaultLabel
from tests.maintenance.conftest import make_anomaly, open_alert

pytestmark = pytest.mark.django_db


def test_raise_from_alert_prefills_links_both_ways_and_is_one_click(north_sensor, manager):
    alert = open_alert(north_sensor, severity="critical")
    work_order, created = work_order_raise_from_alert(alert=alert, user=manager)
    assert created
    assert (work_order.asset, work_order.sensor, work_order.alert) == (north_sensor.asset, north_sensor, alert)
    assert work_order.origin == WorkOrderOrigin.ALERT
    assert work_order.priority == WorkOrderPriority.URGENT
    assert work_order.title == alert.title
    assert list(alert.work_orders.all()) == [work_order]
    # Due from the service level of its priority (urgent: 4 hours by default).
    assert work_order.due_at - work_order.created_at == pytest.approx(timedelta(hours=4), abs=timedelta(seconds=5))
    again, created_again = work_order_raise_from_alert(alert=alert, user=manager)
    assert (again, created_again) == (work_order, False)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED


def test_raise_from_anomaly_uses_its_alert_or_the_anomaly(north_sensor, manager):
    now = timezone.now()
    quiet = make_anomaly(north_sensor, start=now - timedelta(hours=2), end=now - timedelta(hours=1), score=0.6)
    work_order, created = work_order_raise_from_anomaly(anomaly=quiet, user=manager)
    assert created and work_order.origin == WorkOrderOrigin.ANOMALY and work_order.anomaly == quiet
    assert work_order.priority == WorkOrderPriority.MEDIUM
    loud = make_anomaly(north_sensor, start=now - timedelta(minutes=30), end=now, score=0.95)
    alert = open_alert(north_sensor, severity="warning", anomaly=loud)
    from_alert, _ = work_order_raise_from_anomaly(anomaly=loud, user=manager)
    assert from_alert.alert == alert and from_alert.anomaly == loud and from_alert.origin == WorkOrderOrigin.ALERT


def test_service_levels_come_from_settings(settings, north_sensor, manager):
    settings.WORK_ORDER_SERVICE_LEVELS = {**settings.WORK_ORDER_SERVICE_LEVELS, "low": 2}
    work_order = work_order_create(
        asset=north_sensor.asset, title="Grease", priority=WorkOrderPriority.LOW, user=manager
    )
    assert work_order.due_at - work_order.created_at == pytest.approx(timedelta(hours=2), abs=timedelta(seconds=5))


def test_only_allowed_transitions(north_sensor, manager, technician):
    work_order = work_order_create(asset=north_sensor.asset, title="Check pump", user=manager)
    with pytest.raises(WorkOrderError, match="cannot become in progress"):
        work_order_set_status(work_order=work_order, status=WorkOrderStatus.IN_PROGRESS, user=manager)
    with pytest.raises(WorkOrderError, match="Assign someone first"):
        work_order_set_status(work_order=work_order, status=WorkOrderStatus.ASSIGNED, user=manager)
    work_order_assign(work_order=work_order, assignee=technician, user=manager)
    work_order.refresh_from_db()
    assert work_order.status == WorkOrderStatus.ASSIGNED and work_order.assigned_at is not None
    work_order_set_status(work_order=work_order, status=WorkOrderStatus.IN_PROGRESS, user=technician)
    work_order_set_status(work_order=work_order, status=WorkOrderStatus.ON_HOLD, user=technician, note="Parts")
    work_order_set_status(work_order=work_order, status=WorkOrderStatus.IN_PROGRESS, user=technician)
    with pytest.raises(WorkOrderError, match="Record the finding first"):
        work_order_set_status(work_order=work_order, status=WorkOrderStatus.DONE, user=technician)
    work_order_set_status(work_order=work_order, status=WorkOrderStatus.CANCELLED, user=manager)
    work_order.refresh_from_db()
    assert work_order.cancelled_at is not None and work_order.started_at is not None and work_order.on_hold_at
    with pytest.raises(WorkOrderError, match="none"):
        work_order_set_status(work_order=work_order, status=WorkOrderStatus.OPEN, user=manager)
    with pytest.raises(WorkOrderError):
        work_order_assign(work_order=work_order, assignee=technician, user=manager)


def test_timeline_records_who_did_what(north_sensor, manager, technician):
    work_order = work_order_create(asset=north_sensor.asset, title="Check pump", user=manager)
    work_order_assign(work_order=work_order, assignee=technician, user=manager)
    work_order_comment(work_order=work_order, user=technician, text="On my way")
    kinds = [(event.kind, event.user) for event in work_order.events.all()]
    assert kinds == [
        (WorkOrderEventKind.CREATED, manager),
        (WorkOrderEventKind.ASSIGNMENT, manager),
        (WorkOrderEventKind.STATUS, manager),
        (WorkOrderEventKind.COMMENT, technician),
    ]
    with pytest.raises(WorkOrderError):
        work_order_comment(work_order=work_order, user=technician, text="   ")


def test_assignee_must_work_in_the_site(north_sensor, manager, south_technician, viewer):
    work_order = work_order_create(asset=north_sensor.asset, title="Check pump", user=manager)
    for person in (south_technician, viewer):
        with pytest.raises(WorkOrderError, match="cannot work on"):
            work_order_assign(work_order=work_order, assignee=person, user=manager)


def test_alert_stays_open_until_the_work_order_is_done(north_sensor, manager, technician):
    north_sensor.normal_min, north_sensor.normal_max = 0, 100
    north_sensor.save()
    alert = open_alert(north_sensor, kind="out_of_range", severity="warning")
    work_order, _ = work_order_raise_from_alert(alert=alert, user=manager)
    # Neither the rules (the condition no longer holds: no readings out of range) nor staff resolve it meanwhile.
    alerts_check_rules()
    alert_resolve(alert=alert, user=manager)
    alert.refresh_from_db()
    assert alert.status != AlertStatus.RESOLVED
    work_order_assign(work_order=work_order, assignee=technician, user=manager)
    finding = work_order_record_finding(
        work_order=work_order,
        user=technician,
        outcome=FindingOutcome.CONFIRMED_FAULT,
        fault_kind=FaultKind.LEVEL_SHIFT,
        fault_start=alert.opened_at - timedelta(minutes=20),
        cause="Loose mount",
        action="Tightened",
        time_spent_minutes=45,
        parts_used="2x M8 bolt",
    )
    work_order.refresh_from_db()
    alert.refresh_from_db()
    assert work_order.status == WorkOrderStatus.DONE and work_order.done_at is not None
    assert alert.status == AlertStatus.RESOLVED and alert.resolved_by == technician
    label = finding.label
    assert (label.sensor, label.kind, label.source) == (north_sensor, FaultKind.LEVEL_SHIFT, FaultSource.STAFF)
    assert label.start == finding.fault_start


def test_cancelling_closes_the_alert_too(north_sensor, manager):
    alert = open_alert(north_sensor)
    work_order, _ = work_order_raise_from_alert(alert=alert, user=manager)
    work_order_set_status(work_order=work_order, status=WorkOrderStatus.CANCELLED, user=manager)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_false_alarm_becomes_a_normal_label_over_the_anomaly(north_sensor, manager, technician):
    start = datetime(2026, 3, 1, 10, tzinfo=UTC)
    anomaly = make_anomaly(north_sensor, start=start, end=start + timedelta(minutes=30))
    alert = open_alert(north_sensor, anomaly=anomaly)
    work_order, _ = work_order_raise_from_alert(alert=alert, user=manager)
    work_order_assign(work_order=work_order, assignee=technician, user=manager)
    work_order_record_finding(
        work_order=work_order, user=technician, outcome=FindingOutcome.FALSE_ALARM, cause="Test run"
    )
    label = FaultLabel.objects.get(sensor=north_sensor)
    assert (label.kind, label.start, label.end, label.source) == (
        FaultKind.NORMAL,
        anomaly.start,
        anomaly.end,
        FaultSource.STAFF,
    )
    with pytest.raises(WorkOrderError):
        work_order_record_finding(work_order=work_order, user=technician, outcome=FindingOutcome.FALSE_ALARM)


def test_confirmed_fault_needs_kind_and_start(north_sensor, manager, technician):
    work_order = work_order_create(asset=north_sensor.asset, sensor=north_sensor, title="x", user=manager)
    with pytest.raises(WorkOrderError, match="finding is recorded on an assigned"):
        work_order_record_finding(work_order=work_order, user=manager, outcome=FindingOutcome.FALSE_ALARM)
    work_order_assign(work_order=work_order, assignee=technician, user=manager)
    with pytest.raises(WorkOrderError, match="kind"):
        work_order_record_finding(work_order=work_order, user=technician, outcome=FindingOutcome.CONFIRMED_FAULT)
    with pytest.raises(WorkOrderError, match="started"):
        work_order_record_finding(
            work_order=work_order, user=technician, outcome=FindingOutcome.CONFIRMED_FAULT, fault_kind="drift"
        )
    assert WorkOrder.objects.get(pk=work_order.pk).status == WorkOrderStatus.ASSIGNED


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\photo 1.JPG", "photo_1.JPG"),
        ("pompe-défaut.pdf", "pompe-defaut.pdf"),
        ("..", "file"),
        (".htaccess", "htaccess"),
        ("a" * 300 + ".png", "a" * 96 + ".png"),
    ],
)
def test_attachment_names_are_sanitised(given, expected):
    assert attachment_clean_name(given) == expected


def test_a_new_priority_moves_the_due_date(north_sensor, manager):
    from maintenance.services import work_order_edit

    work_order = work_order_create(
        asset=north_sensor.asset, title="Grease", priority=WorkOrderPriority.LOW, user=manager
    )
    work_order_edit(work_order=work_order, user=manager, priority=WorkOrderPriority.URGENT, title="Grease now")
    work_order.refresh_from_db()
    assert work_order.title == "Grease now"
    assert work_order.due_at - work_order.created_at == pytest.approx(timedelta(hours=4), abs=timedelta(seconds=5))
    event = work_order.events.get(kind=WorkOrderEventKind.EDIT)
    assert event.user == manager and "priority urgent" in event.text

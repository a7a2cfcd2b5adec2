"""Rule-based alerts and their mail: opened once, refreshed while true, resolved when cleared, mail retried."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from mlops.models import Alert, AlertSubscription
from mlops.services import alert_acknowledge, alert_raise, alert_resolve, alerts_check_rules, alerts_notify
from readings.models import Reading
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db


def add_readings(sensor, values, *, end=None, step=timedelta(seconds=60)):
    end = end or timezone.now()
    Reading.objects.bulk_create(
        Reading(sensor=sensor, time=end - step * (len(values) - 1 - i), value=v) for i, v in enumerate(values)
    )


@pytest.fixture
def subscriber():
    user = User.objects.create_user("tech", email="tech@example.com", password="x", is_staff=True)
    AlertSubscription.objects.create(user=user, min_severity="warning")
    return user


def test_readings_outside_range_in_a_row_open_one_alert_until_they_return(
    settings, subscriber, django_capture_on_commit_callbacks
):
    settings.ALERT_OUT_OF_RANGE_READINGS = 3
    sensor = SensorFactory(normal_min=10, normal_max=80, sampling_interval=60)
    add_readings(sensor, [50, 90, 95, 99])
    with django_capture_on_commit_callbacks(execute=True):
        alerts_check_rules()
        alerts_check_rules()
    alert = Alert.objects.get(sensor=sensor, kind="out_of_range")
    assert alert.status == "open" and "last 3 readings" in alert.detail
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["tech@example.com"]
    assert alert.notified_at is not None

    add_readings(sensor, [40], end=timezone.now() + timedelta(seconds=1))
    alerts_check_rules()
    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.resolved_by is None


def test_two_readings_out_of_three_do_not_alert(settings):
    settings.ALERT_OUT_OF_RANGE_READINGS = 3
    sensor = SensorFactory(normal_min=10, normal_max=80)
    add_readings(sensor, [90, 50, 95])
    alerts_check_rules()
    assert not Alert.objects.filter(kind="out_of_range").exists()


def test_stale_and_offline_sensors_alert_with_their_severity():
    stale = SensorFactory(sampling_interval=60)
    offline = SensorFactory(sampling_interval=60)
    add_readings(stale, [20], end=timezone.now() - timedelta(minutes=5))
    add_readings(offline, [20], end=timezone.now() - timedelta(hours=3))
    alerts_check_rules()
    assert Alert.objects.get(sensor=stale).kind == "stale"
    assert Alert.objects.get(sensor=stale).severity == "warning"
    assert Alert.objects.get(sensor=offline).kind == "offline"
    assert Alert.objects.get(sensor=offline).severity == "critical"


def test_a_failing_smtp_server_loses_no_alert_and_is_retried(settings, subscriber):
    sensor = SensorFactory()
    alert, created = alert_raise(sensor=sensor, kind="anomaly", severity="critical", title="Bearing vibration")
    assert created
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    settings.EMAIL_USE_TLS = False
    assert alerts_notify() == {"sent": 0, "failed": 1, "messages": 0, "pending": 1, "sending": 0}
    alert.refresh_from_db()
    assert alert.notified_at is None and alert.notify_attempts == 1 and "Connection refused" in alert.notify_error

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert alerts_notify() == {"sent": 1, "failed": 0, "messages": 1, "pending": 0, "sending": 0}
    alert.refresh_from_db()
    assert alert.notified_at is not None and alert.notify_attempts == 2 and alert.notify_error == ""
    assert alerts_notify() == {"sent": 0, "failed": 0, "messages": 0, "pending": 0, "sending": 0}
    assert len(mail.outbox) == 1


def test_subscribers_get_only_their_severities(subscriber):
    sensor = SensorFactory()
    alert_raise(sensor=sensor, kind="stale", severity="info", title="Slightly late")
    alerts_notify()
    assert mail.outbox == []


def test_acknowledge_then_resolve_and_a_new_alert_may_open_after(subscriber):
    sensor = SensorFactory()
    alert, _ = alert_raise(sensor=sensor, kind="offline", severity="critical", title="Gone")
    again, created = alert_raise(sensor=sensor, kind="offline", severity="critical", title="Gone")
    assert again.pk == alert.pk and not created
    alert_acknowledge(alert=alert, user=subscriber)
    assert alert.status == "acknowledged" and alert.acknowledged_by == subscriber
    alert_resolve(alert=alert, user=subscriber)
    assert alert.status == "resolved"
    _, created = alert_raise(sensor=sensor, kind="offline", severity="critical", title="Gone again")
    assert created


def test_check_alerts_command_reports(settings):
    out = StringIO()
    call_command("check_alerts", stdout=out)
    assert "Alerts: 0 opened, 0 resolved. Mail: 0 sent (0 messages), 0 failed, 0 pending" in out.getvalue()


def test_alert_page_buttons_acknowledge_and_resolve_for_staff_who_may_change(client, subscriber):
    from django.contrib.auth.models import Permission

    sensor = SensorFactory()
    alert, _ = alert_raise(sensor=sensor, kind="offline", severity="critical", title="Pump offline")
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_alert"))
    client.force_login(viewer)
    page = client.get(f"/admin/mlops/alert/{alert.pk}/change/").content.decode()
    assert "Pump offline" in page and "Acknowledge</button>" not in page
    assert client.post(f"/admin/mlops/alert/{alert.pk}/acknowledge/").status_code == 403

    subscriber.user_permissions.add(*Permission.objects.filter(codename__in=["view_alert", "change_alert"]))
    client.force_login(User.objects.get(pk=subscriber.pk))
    page = client.get(f"/admin/mlops/alert/{alert.pk}/change/").content.decode()
    assert "Acknowledge</button>" in page and "Resolve</button>" in page
    response = client.post(f"/admin/mlops/alert/{alert.pk}/acknowledge/")
    assert response.status_code == 302 and response["Location"].endswith(f"/admin/mlops/alert/{alert.pk}/change/")
    alert.refresh_from_db()
    assert alert.status == "acknowledged" and alert.acknowledged_by == subscriber
    assert "Acknowledge</button>" not in client.get(f"/admin/mlops/alert/{alert.pk}/change/").content.decode()
    client.post(f"/admin/mlops/alert/{alert.pk}/resolve/")
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert client.get(f"/admin/mlops/alert/{alert.pk}/acknowledge/").status_code == 405

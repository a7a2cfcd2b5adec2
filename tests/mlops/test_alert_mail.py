"""Alert mail through a real SMTP server: each alert mailed once whatever runs overlap, bounded when SMTP hangs."""

import re
import threading
import time
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.db import connection

from mlops.models import Alert, AlertSubscription
from mlops.services import alerts_notify
from tests.factories import SensorFactory
from tests.smtp_servers import hung_smtp_server, smtp_server


def subscribe(name: str, min_severity: str = "warning") -> str:
    user = User.objects.create_user(name, email=f"{name}@example.com", password="x", is_staff=True)
    AlertSubscription.objects.create(user=user, min_severity=min_severity)
    return user.email


def open_alerts(count: int, *, kind: str = "anomaly", severity: str = "critical") -> list[Alert]:
    # Straight rows, not alert_raise: its mail after commit would go out before the test points SMTP anywhere.
    return [
        Alert.objects.create(sensor=SensorFactory(), kind=kind, severity=severity, title=f"Alert {i}")
        for i in range(count)
    ]


def use_smtp(settings, host: str, port: int, *, timeout: int = 10) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = host, port, timeout
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False


def at_once(count: int, target) -> list:
    """Run ``target`` in ``count`` threads released together (each with its own database connection)."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(i):
        try:
            barrier.wait()
            results[i] = target()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_mail_each_alert_exactly_once(settings):
    email = subscribe("tech")
    alerts = open_alerts(20)
    settings.ALERT_DIGEST_THRESHOLD = 100  # one mail per alert here; storms have their own test
    with smtp_server(delay=0.05) as inbox:
        use_smtp(settings, inbox.host, inbox.port)
        results = at_once(2, alerts_notify)

    assert inbox.recipients() == [email] * 20
    subjects = [received.message["Subject"] for received in inbox.messages]
    assert len(set(subjects)) == 20, "an alert was mailed twice"
    assert sum(result["sent"] for result in results) == 20
    assert sum(result["failed"] for result in results) == 0
    for alert in Alert.objects.filter(pk__in=[a.pk for a in alerts]):
        assert alert.notify_state == "sent" and alert.notified_at is not None
        assert alert.notify_attempts == 1 and alert.notify_error == ""


@pytest.mark.django_db
def test_a_claim_older_than_the_timeout_is_taken_back_and_a_live_one_left_alone(settings):
    from datetime import timedelta

    from django.core import mail
    from django.utils import timezone

    subscribe("tech")
    crashed, busy = open_alerts(2)
    settings.ALERT_MAIL_CLAIM_TIMEOUT = 600
    now = timezone.now()
    Alert.objects.filter(pk=crashed.pk).update(notify_state="sending", notify_claimed_at=now - timedelta(seconds=601))
    Alert.objects.filter(pk=busy.pk).update(notify_state="sending", notify_claimed_at=now - timedelta(seconds=60))

    assert alerts_notify() == {"sent": 1, "failed": 0, "messages": 1, "pending": 0, "sending": 1}
    assert [message.subject for message in mail.outbox] == [f"[Smart Maintenance] Critical: {crashed.title}"]
    crashed.refresh_from_db(), busy.refresh_from_db()
    assert crashed.notify_state == "sent" and crashed.notify_attempts == 1 and crashed.notify_claimed_at is None
    assert busy.notify_state == "sending" and busy.notified_at is None


@pytest.mark.django_db(transaction=True)
def test_a_hung_smtp_server_holds_its_run_for_the_timeout_only_and_no_other_run_mails_its_alerts(settings):
    from django.conf import settings as live

    from tests.conftest import run_manage, server_url

    email = subscribe("tech")
    alerts = open_alerts(3)
    with hung_smtp_server() as hung:
        env = {
            "DATABASE_URL": server_url(live.DATABASES["default"]["NAME"]),
            "DJANGO_VAR_DIR": str(live.VAR_DIR),
            "EMAIL_SMTP_HOST": hung.host,
            "EMAIL_SMTP_PORT": str(hung.port),
            "EMAIL_SMTP_USE_TLS": "false",
            "EMAIL_SMTP_TIMEOUT": "5",
        }
        stuck = {}
        thread = threading.Thread(target=lambda: stuck.update(run=run_manage("check_alerts", env=env)))
        began = time.monotonic()
        thread.start()
        while not hung.accepted and thread.is_alive():
            time.sleep(0.05)
        assert hung.accepted, stuck["run"].stderr

        # Another run meanwhile, with a working SMTP server: the alerts are the stuck run's, not its.
        with smtp_server() as inbox:
            use_smtp(settings, inbox.host, inbox.port)
            assert alerts_notify()["sent"] == 0
        thread.join(timeout=120)
        took = time.monotonic() - began
    assert not thread.is_alive() and stuck["run"].returncode == 0, stuck["run"].stderr
    assert inbox.messages == []
    # The run gave up after one timeout (one connection), instead of waiting EMAIL_SMTP_TIMEOUT once per alert.
    assert len(hung.accepted) == 1
    assert took < 120, f"check_alerts took {took:.0f} s against a hung SMTP server"
    for alert in Alert.objects.filter(pk__in=[a.pk for a in alerts]):
        assert alert.notify_state == "pending" and alert.notify_attempts == 1
        assert "timed out" in alert.notify_error

    # The next run, SMTP answering again, mails each of them once.
    with smtp_server() as inbox:
        use_smtp(settings, inbox.host, inbox.port)
        assert alerts_notify()["sent"] == 3
    assert inbox.recipients() == [email] * 3
    assert set(Alert.objects.values_list("notify_state", "notify_attempts", "notify_error")) == {("sent", 2, "")}


def stale_fleet(count: int) -> list:
    """``count`` active sensors whose last reading is 5 minutes old at a 60 s interval: each goes stale."""
    from datetime import timedelta

    from django.utils import timezone

    from readings.models import Reading

    sensors = [SensorFactory(sampling_interval=60) for _ in range(count)]
    Reading.objects.bulk_create(
        Reading(sensor=sensor, time=timezone.now() - timedelta(minutes=5), value=20.0) for sensor in sensors
    )
    return sensors


def printed_mail(output: str) -> dict[str, int]:
    found = re.search(r"Mail: (\d+) sent \((\d+) messages\), (\d+) failed, (\d+) pending", output)
    assert found, output
    return dict(zip(["sent", "messages", "failed", "pending"], map(int, found.groups()), strict=True))


@pytest.mark.django_db(transaction=True)
def test_two_check_alerts_at_once_print_the_mail_they_really_sent():
    from django.conf import settings as live

    from tests.conftest import run_manage, server_url

    email = subscribe("tech")
    stale_fleet(20)
    with smtp_server(delay=0.05) as inbox:
        env = {
            "DATABASE_URL": server_url(live.DATABASES["default"]["NAME"]),
            "DJANGO_VAR_DIR": str(live.VAR_DIR),
            "EMAIL_SMTP_HOST": inbox.host,
            "EMAIL_SMTP_PORT": str(inbox.port),
            "EMAIL_SMTP_USE_TLS": "false",
            "ALERT_DIGEST_THRESHOLD": "100",  # one mail per alert here; storms have their own test
        }
        runs = at_once(2, lambda: run_manage("check_alerts", env=env))
    for run in runs:
        assert run.returncode == 0, run.stderr
    printed = [printed_mail(run.stdout) for run in runs]

    assert inbox.recipients() == [email] * 20
    assert len({received.message["Subject"] for received in inbox.messages}) == 20
    assert sum(p["sent"] for p in printed) == 20 and sum(p["messages"] for p in printed) == 20
    assert [p["failed"] for p in printed] == [0, 0]
    assert Alert.objects.filter(kind="stale", notify_state="sent", notify_attempts=1).count() == 20


@pytest.mark.django_db
def test_each_subscriber_gets_a_message_of_their_own_and_sees_no_other_address(settings):
    everyone = [subscribe("ana"), subscribe("ben"), subscribe("chief", min_severity="critical")]
    open_alerts(2, severity="warning")
    open_alerts(1, severity="critical")
    with smtp_server() as inbox:
        use_smtp(settings, inbox.host, inbox.port)
        result = alerts_notify()

    assert result["sent"] == 3 and result["messages"] == 7
    assert sorted(inbox.recipients()) == sorted(everyone[:1] * 3 + everyone[1:2] * 3 + everyone[2:])
    for received in inbox.messages:
        assert len(received.rcpt_tos) == 1
        (own,) = received.rcpt_tos
        assert received.message["To"] == own
        for other in set(everyone) - {own}:
            assert other not in received.headers and other not in received.body


@pytest.mark.django_db
def test_a_recipient_refused_for_now_is_mailed_later_and_the_others_not_again(settings):
    ana, ben = subscribe("ana"), subscribe("ben")
    (alert,) = open_alerts(1)
    with smtp_server() as inbox:
        use_smtp(settings, inbox.host, inbox.port)
        inbox.refuse.add(ben)
        assert alerts_notify()["failed"] == 1
        alert.refresh_from_db()
        assert alert.notify_state == "pending" and alert.notify_attempts == 1 and ben in alert.notify_error
        assert alert.notified_to == [ana]

        inbox.refuse.clear()
        assert alerts_notify()["sent"] == 1
    assert inbox.recipients() == [ana, ben]
    alert.refresh_from_db()
    assert alert.notify_state == "sent" and alert.notify_attempts == 2 and alert.notified_to == [ana, ben]


@pytest.mark.django_db(transaction=True)
def test_a_fleet_gone_stale_is_one_digest_mail_per_subscriber(settings):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from readings.models import Reading

    settings.ALERT_DIGEST_THRESHOLD = 10
    settings.SITE_URL = "https://maint.example.com"
    ana, chief = subscribe("ana"), subscribe("chief", min_severity="critical")
    stale_fleet(12)
    offline = [SensorFactory(sampling_interval=60) for _ in range(2)]
    Reading.objects.bulk_create(
        Reading(sensor=sensor, time=timezone.now() - timedelta(hours=3), value=1.0) for sensor in offline
    )
    out = StringIO()
    with smtp_server() as inbox:
        use_smtp(settings, inbox.host, inbox.port)
        call_command("check_alerts", stdout=out)

    assert "Alerts: 14 opened" in out.getvalue()
    assert printed_mail(out.getvalue()) == {"sent": 14, "messages": 3, "failed": 0, "pending": 0}
    to_ana = [received for received in inbox.messages if received.rcpt_tos == [ana]]
    assert len(to_ana) == 1, "one digest, not one mail per alert"
    digest = to_ana[0]
    assert digest.message["Subject"] == "[Smart Maintenance] 14 new alerts: 2 critical, 12 warning"
    body = digest.body
    # By severity (critical first), then by kind; each alert with its link.
    assert body.index("Critical (2)") < body.index("Offline (no readings) (2)") < body.index("Warning (12)")
    assert body.index("Warning (12)") < body.index("Stale (readings late) (12)")
    alerts = list(Alert.objects.all())
    assert len(alerts) == 14
    for alert in alerts:
        assert alert.title in body
        assert f"https://maint.example.com/admin/mlops/alert/{alert.pk}/change/" in body
    # The critical-only subscriber has 2 alerts: under the threshold, one mail each.
    assert sorted(r.message["Subject"] for r in inbox.messages if r.rcpt_tos == [chief]) == sorted(
        f"[Smart Maintenance] Critical: {alert.title}" for alert in alerts if alert.kind == "offline"
    )
    for alert in alerts:
        assert alert.notify_state == "sent" and alert.notify_attempts == 1
        assert alert.notified_to == ([ana, chief] if alert.kind == "offline" else [ana])


@pytest.mark.django_db
def test_a_send_that_keeps_failing_waits_longer_before_each_attempt(settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.ALERT_MAIL_RETRY_BACKOFF, settings.ALERT_MAIL_RETRY_BACKOFF_MAX = 60, 200
    email = subscribe("tech")
    (alert,) = open_alerts(1)
    waits = []
    with smtp_server() as inbox:
        use_smtp(settings, inbox.host, inbox.port)
        inbox.refuse.add(email)  # 451 for now, every time
        for attempt in range(1, 5):
            before = timezone.now()
            assert alerts_notify()["failed"] == 1
            alert.refresh_from_db()
            assert alert.notify_state == "pending" and alert.notify_attempts == attempt
            waits.append(round((alert.notify_next_at - before).total_seconds() / 10) * 10)
            # Before its time no run tries it (nor counts an attempt)...
            if alert.notify_next_at > timezone.now():
                assert alerts_notify() == {"sent": 0, "failed": 0, "messages": 0, "pending": 1, "sending": 0}
            # ...and once its time has come (moved to now here, as the clock would) the next run does.
            Alert.objects.filter(pk=alert.pk).update(notify_next_at=timezone.now() - timedelta(seconds=1))
        inbox.refuse.clear()
        assert alerts_notify()["sent"] == 1
    # The first failure is tried by the next run; then 60 s, doubling, capped at ALERT_MAIL_RETRY_BACKOFF_MAX.
    assert waits == [0, 60, 120, 200]
    alert.refresh_from_db()
    assert alert.notify_state == "sent" and alert.notify_attempts == 5 and alert.notify_next_at is None
    assert inbox.recipients() == [email]


@pytest.mark.django_db(transaction=True)
def test_a_mail_run_killed_midway_is_taken_over_without_mailing_anyone_twice(settings):
    import signal
    import subprocess
    import sys
    from datetime import timedelta

    from django.utils import timezone

    from tests.conftest import ROOT
    from tests.workers import worker_env

    email = subscribe("tech")
    alerts = open_alerts(3)
    with smtp_server(delay=1.0) as inbox:
        env = worker_env(EMAIL_SMTP_HOST=inbox.host, EMAIL_SMTP_PORT=str(inbox.port), EMAIL_SMTP_USE_TLS="false")
        run = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "check_alerts"], cwd=ROOT, env=env)
        try:
            # Killed (as a lost worker would be) once its first mail went out and was recorded.
            deadline = time.monotonic() + 120
            while not Alert.objects.exclude(notified_to=[]).exists():
                assert run.poll() is None and time.monotonic() < deadline, "the run ended before any mail"
                time.sleep(0.05)
            run.send_signal(signal.SIGKILL)
        finally:
            run.wait()
        assert len(inbox.messages) == 1
    assert set(Alert.objects.values_list("notify_state", flat=True)) == {"sending"}

    # Its claims taken back after ALERT_MAIL_CLAIM_TIMEOUT (dated back here): the next run mails only the others.
    Alert.objects.update(notify_claimed_at=timezone.now() - timedelta(seconds=settings.ALERT_MAIL_CLAIM_TIMEOUT + 1))
    with smtp_server() as again:
        use_smtp(settings, again.host, again.port)
        assert alerts_notify()["sent"] == 3
    assert len(again.messages) == 2 and again.recipients() == [email] * 2
    assert set(Alert.objects.filter(pk__in=[a.pk for a in alerts]).values_list("notify_state", flat=True)) == {"sent"}

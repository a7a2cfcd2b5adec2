"""Alerts in the console (issue 15): the dashboard in an alert storm (totals by severity and kind, groups by kind
and site, sensors needing attention kept in view, a link to the full list), the alert list by severity rank, the
alert page (a condition still active, what mailing did, the sensor's chart around it) and the sensor page's open
alerts and anomalies."""

import json
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from mlops import selectors as mlops_selectors
from mlops.choices import AlertKind, AlertMailState, AlertSeverity, AlertStatus
from mlops.models import Alert, Anomaly
from readings import selectors
from tests.admin.conftest import fill
from tests.factories import AssetFactory, SensorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def mlops_providers(no_providers):
    """The console with mlops as the project runs it (the conftest leaves every provider out)."""
    selectors.register_alerts(mlops_selectors.dashboard_alerts)
    selectors.register_alert_summary(mlops_selectors.alerts_summary)
    selectors.register_sensor_events(mlops_selectors.sensor_events)
    selectors.register_chart_marks(mlops_selectors.anomaly_chart_marks)


def alert(sensor, kind=AlertKind.OFFLINE, severity=AlertSeverity.CRITICAL, **fields) -> Alert:
    return Alert.objects.create(
        sensor=sensor, kind=kind, severity=severity, title=f"{sensor.sensor_id} {kind}", **fields
    )


def storm(per_site: int = 12) -> list:
    """A fleet-wide stale condition on two sites, plus an offline and an out-of-range alert."""
    now = timezone.now()
    sensors = []
    for site in ("North Plant", "South Plant"):
        asset = AssetFactory(site=site)
        for _ in range(per_site):
            sensor = SensorFactory(asset=asset)
            fill(sensor, 3, end=now - timedelta(minutes=5))
            alert(sensor, AlertKind.STALE, AlertSeverity.WARNING)
            sensors.append(sensor)
    alert(sensors[0], AlertKind.OFFLINE, AlertSeverity.CRITICAL)
    alert(sensors[1], AlertKind.OUT_OF_RANGE, AlertSeverity.INFO)
    return sensors


def test_the_dashboard_in_a_storm_counts_groups_and_links_to_the_full_list(superuser_client):
    storm()
    response = superuser_client.get("/admin/")
    html = response.content.decode()
    [summary] = response.context["dashboard"]["alert_summaries"]
    assert summary["total"] == 26
    assert [(row["value"], row["count"]) for row in summary["by_severity"]] == [
        ("critical", 1),
        ("warning", 24),
        ("info", 1),
    ]
    assert {row["value"]: row["count"] for row in summary["by_kind"]} == {"stale": 24, "offline": 1, "out_of_range": 1}
    groups = [(group["kind"], group["site"], group["count"]) for group in summary["groups"]]
    assert groups[0] == ("offline", "North Plant", 1)  # the most severe first, then the largest
    assert ("stale", "North Plant", 12) in groups and ("stale", "South Plant", 12) in groups
    assert 'id="sm-alert-groups"' in html and "North Plant" in html and "South Plant" in html
    # Ten rows of the most severe, and a link to all of them.
    rows = re.search(r'id="sm-alert-rows">(.*?)</table>', html, re.S).group(1)
    assert rows.count("<tr>") == 1 + 10
    assert 'id="sm-alerts-all"' in html and "All 26 open alerts" in html
    # The sensors needing attention come first: an alert storm never pushes them down the page.
    assert html.index('id="sm-attention"') < html.index('id="sm-alerts"')
    assert 'class="sm-dashboard-grid"' in html


def test_the_dashboards_alert_rows_link_the_sensor(superuser_client):
    sensor = SensorFactory(sensor_id="probe-link")
    alert(sensor)
    html = superuser_client.get("/admin/").content.decode()
    rows = re.search(r'id="sm-alert-rows">(.*?)</table>', html, re.S).group(1)
    assert f'<a href="/admin/sensors/sensor/{sensor.pk}/change/">probe-link</a>' in rows


def test_group_and_total_links_open_the_alert_list_filtered(superuser_client):
    storm(per_site=3)
    [summary] = superuser_client.get("/admin/").context["dashboard"]["alert_summaries"]
    north_stale = next(g for g in summary["groups"] if g["kind"] == "stale" and g["site"] == "North Plant")
    response = superuser_client.get(north_stale["url"])
    assert response.status_code == 200
    assert response.context["cl"].result_count == 3
    critical = next(row for row in summary["by_severity"] if row["value"] == "critical")
    assert superuser_client.get(critical["url"]).context["cl"].result_count == 1
    assert superuser_client.get(summary["list_url"]).context["cl"].result_count == 8


def test_the_alert_list_sorts_by_severity_rank_then_newest(superuser_client):
    sensors = [SensorFactory() for _ in range(4)]
    old = timezone.now() - timedelta(hours=5)
    alert(sensors[0], severity=AlertSeverity.INFO)
    critical = alert(sensors[1], severity=AlertSeverity.CRITICAL)
    Alert.objects.filter(pk=critical.pk).update(opened_at=old)
    alert(sensors[2], severity=AlertSeverity.WARNING)
    newest_critical = alert(sensors[3], severity=AlertSeverity.CRITICAL)
    response = superuser_client.get("/admin/mlops/alert/")
    assert response.context["title"] == "Alerts"
    order = [(a.severity, a.pk) for a in response.context["cl"].result_list]
    assert [severity for severity, _ in order] == ["critical", "critical", "warning", "info"]
    assert order[0][1] == newest_critical.pk


def test_an_alert_whose_condition_holds_says_so_and_offers_to_acknowledge(superuser_client):
    sensor = SensorFactory(sampling_interval=60)
    fill(sensor, 5, end=timezone.now() - timedelta(hours=2))  # offline: 2 h against 10 minutes
    offline = alert(sensor, AlertKind.OFFLINE)
    html = superuser_client.get(f"/admin/mlops/alert/{offline.pk}/change/").content.decode()
    assert 'id="sm-condition"' in html and "still active" in html and "acknowledge it instead" in html
    assert ">Acknowledge</button>" in html and ">Resolve anyway</button>" in html
    assert f"Alert: {offline.title}" in html  # the page's title says what it is

    fill(sensor, 3)  # back online
    cache.clear()  # ingest drops the cached latest readings; writing them directly does not
    html = superuser_client.get(f"/admin/mlops/alert/{offline.pk}/change/").content.decode()
    assert 'id="sm-condition"' not in html and ">Resolve</button>" in html


def test_an_out_of_range_condition_is_active_while_the_last_readings_are_outside(superuser_client, settings):
    settings.ALERT_OUT_OF_RANGE_READINGS = 3
    sensor = SensorFactory()
    fill(sensor, 5, value=lambda i: 95.0)
    hot = alert(sensor, AlertKind.OUT_OF_RANGE, AlertSeverity.WARNING)
    assert "outside its normal range" in mlops_selectors.alert_condition_active(hot)
    fill(sensor, 3, end=timezone.now() + timedelta(minutes=3), value=lambda i: 40.0)
    assert mlops_selectors.alert_condition_active(hot) == ""


def test_the_mail_column_says_what_really_happened(superuser_client):
    sensors = [SensorFactory() for _ in range(3)]
    now = timezone.now()
    alert(sensors[0], notify_state=AlertMailState.NO_RECIPIENTS, notified_at=now)
    alert(sensors[1], notify_state=AlertMailState.SENT, notified_at=now, notified_to=["a@x.test", "b@x.test"])
    alert(sensors[2], notify_attempts=2, notify_error="SMTP refused")
    html = superuser_client.get("/admin/mlops/alert/").content.decode()
    assert "Nobody mailed: no subscriber for its severity" in html
    assert "Mailed to 2 subscribers" in html
    assert "Not sent yet, 2 failed attempts: SMTP refused" in html
    page = superuser_client.get(f"/admin/mlops/alert/{Alert.objects.get(sensor=sensors[0]).pk}/change/")
    assert "Nobody mailed" in page.content.decode()


def test_the_alert_page_charts_the_sensor_around_the_alert(superuser_client):
    sensor = SensorFactory()
    fill(sensor, 12 * 60)
    raised = alert(sensor, AlertKind.STALE, AlertSeverity.WARNING)
    Alert.objects.filter(pk=raised.pk).update(opened_at=timezone.now() - timedelta(hours=1))
    html = superuser_client.get(f"/admin/mlops/alert/{raised.pk}/change/").content.decode()
    assert 'id="sm-chart"' in html and 'id="sm-chart-data"' in html
    assert "js/admin/sensor_chart.js" in html and "uPlot.iife.min.js" in html
    data = json.loads(
        re.search(r'<script id="sm-chart-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    )
    assert data["sensor_id"] == sensor.sensor_id and data["points"] > 0
    # 6 h before it opened (7 h ago) to now.
    assert 7 * 3600 - 120 <= data["end"] - data["start"] <= 7 * 3600 + 120


def test_the_sensor_page_lists_open_alerts_and_recent_anomalies_with_links(superuser_client):
    sensor = SensorFactory()
    fill(sensor, 60)
    open_alert = alert(sensor, AlertKind.STALE, AlertSeverity.WARNING, status=AlertStatus.ACKNOWLEDGED)
    alert(sensor, AlertKind.OFFLINE, status=AlertStatus.RESOLVED)
    now = timezone.now()
    anomaly = Anomaly.objects.create(
        sensor=sensor,
        start=now - timedelta(minutes=30),
        end=now - timedelta(minutes=20),
        score=0.93,
        kind="spike",
        model_name="detector",
        model_version="3",
    )
    html = superuser_client.get(f"/admin/sensors/sensor/{sensor.pk}/change/").content.decode()
    alerts = re.search(r'id="sm-sensor-alerts"(.*?)</section>', html, re.S).group(1)
    assert f'href="/admin/mlops/alert/{open_alert.pk}/change/"' in alerts
    assert alerts.count("<li>") == 1  # the resolved one is not open
    assert "sm-badge--alert-acknowledged" in alerts
    assert f'href="/admin/mlops/alert/?sensor__id__exact={sensor.pk}"' in alerts
    anomalies = re.search(r'id="sm-sensor-anomalies"(.*?)</section>', html, re.S).group(1)
    assert f'href="/admin/mlops/anomaly/{anomaly.pk}/change/"' in anomalies and "score 0.93" in anomalies
    assert superuser_client.get(f"/admin/mlops/anomaly/?sensor__id__exact={sensor.pk}").status_code == 200
    assert superuser_client.get(f"/admin/mlops/alert/?sensor__id__exact={sensor.pk}").context["cl"].result_count == 2


def test_acknowledged_and_warning_badges_have_distinct_colours():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    colours = {}
    for path in (root / "mlops/static/mlops/admin.css", root / "static/css/admin/console.css"):
        for selectors_, colour in re.findall(r"([^{}]+)\{\s*background:\s*(#[0-9a-f]{6})", path.read_text()):
            for selector in selectors_.split(","):
                colours[selector.strip()] = colour
    assert colours[".ml-status--acknowledged"] != colours[".ml-severity--warning"]
    assert colours[".sm-badge--alert-acknowledged"] != colours[".sm-badge--warning"]

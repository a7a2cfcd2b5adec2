"""The console in a real browser, issue 15: alerts in a storm, a page that stays current, small things that cost
trust; at a desktop's 1440 px and a phone's 390 px, with screenshots, no console error and no CSP violation.

Reuses tests/admin/test_browser.py's helpers (Debian's Chromium, Playwright, the CSP watch, the login). Every row
is written before the browser starts (Django's ORM refuses to run beside Playwright's event loop).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from mlops import selectors as mlops_selectors
from mlops.choices import AlertKind, AlertSeverity
from mlops.models import Alert, Anomaly
from readings import selectors
from tests.admin.conftest import STAFF_PERMISSIONS, fill, make_staff
from tests.admin.test_browser import (  # noqa: F401 (chromium is a fixture)
    ARGS,
    ARTIFACTS,
    OVERFLOW,
    assert_strict_csp,
    chromium,
    log_in,
    open_context,
)
from tests.factories import AssetFactory, SensorFactory

WIDTHS = {"desktop": 1440, "phone": 390}
PERMISSIONS = [*STAFF_PERMISSIONS, "mlops.view_alert", "mlops.change_alert", "mlops.view_anomaly"]
STORM = 30


@pytest.fixture
def storm(transactional_db, live_server):
    """A staff login; 30 sensors on two sites gone stale (30 warning alerts), one offline (critical); a live
    sensor reading every minute for a day, with an open alert and an anomaly."""
    for register, provider in (
        (selectors.register_alerts, mlops_selectors.dashboard_alerts),
        (selectors.register_alert_summary, mlops_selectors.alerts_summary),
        (selectors.register_sensor_events, mlops_selectors.sensor_events),
        (selectors.register_chart_marks, mlops_selectors.anomaly_chart_marks),
    ):
        register(provider)
    make_staff("browser-staff", PERMISSIONS)
    now = timezone.now().replace(second=0, microsecond=0)
    for n in range(STORM):
        sensor = SensorFactory(asset=AssetFactory(site="North Plant" if n % 2 else "South Plant"))
        fill(sensor, 5, end=now - timedelta(minutes=5))
        Alert.objects.create(
            sensor=sensor, kind=AlertKind.STALE, severity=AlertSeverity.WARNING, title=f"{sensor.sensor_id} is stale"
        )
    gone = SensorFactory(sensor_id="probe-gone")
    fill(gone, 30, end=now - timedelta(hours=3))
    gone_alert = Alert.objects.create(
        sensor=gone, kind=AlertKind.OFFLINE, severity=AlertSeverity.CRITICAL, title="probe-gone is offline"
    )
    Alert.objects.filter(pk=gone_alert.pk).update(opened_at=now - timedelta(hours=2))
    sensor = SensorFactory(sensor_id="probe-live", name="Bearing temperature")
    fill(sensor, 24 * 60, end=now, value=lambda i: 40.0 + (i % 120) / 10)
    Anomaly.objects.create(
        sensor=sensor,
        start=now - timedelta(hours=2),
        end=now - timedelta(hours=1, minutes=50),
        score=0.91,
        kind="spike",
        model_name="detector",
        model_version="1",
    )
    Alert.objects.create(sensor=sensor, kind=AlertKind.ANOMALY, severity=AlertSeverity.INFO, title="Spike found")
    return {"url": live_server.url, "sensor": sensor, "gone_alert": gone_alert}


@pytest.fixture
def browser(chromium, storm):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=ARGS, headless=True)
        yield browser
        browser.close()


def fits(page, name, width):
    scroll_width, inner_width = page.evaluate(OVERFLOW)
    assert scroll_width <= inner_width, f"{name} overflows at {width} px: {scroll_width} > {inner_width}"


def refreshed(page, before: int) -> int:
    """Triggers the live refresh now (as its timer would) and waits for it to land."""
    page.evaluate("() => window.smLive.refresh()")
    page.wait_for_function(f"() => Number(document.getElementById('sm-updated').dataset.refreshes || 0) > {before}")
    return before + 1


@pytest.mark.parametrize("device", sorted(WIDTHS))
def test_the_console_in_an_alert_storm_stays_readable_and_current(storm, browser, device):
    width = WIDTHS[device]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context, page, errors, violations = open_context(browser, width)
    base = storm["url"]
    log_in(page, base)

    # Dashboard: totals, groups, the needs-attention list kept in view, a link to every alert.
    page.wait_for_selector("#sm-dashboard")
    assert page.inner_text("#sm-alerts-total") == str(STORM + 2)
    assert "North Plant" in page.inner_text("#sm-alert-groups") and "South Plant" in page.inner_text("#sm-alert-groups")
    attention = page.locator("#sm-attention").bounding_box()
    alerts = page.locator("#sm-alerts").bounding_box()
    if device == "desktop":
        assert abs(attention["y"] - alerts["y"]) < 2, "side by side at 1440 px"
        assert attention["y"] < 900
    else:
        assert attention["y"] < alerts["y"] and alerts["y"] < attention["y"] + 40 * 16 + 200
    fits(page, "dashboard", width)
    page.screenshot(path=ARTIFACTS / f"console-dashboard-storm-{width}px.png", full_page=True)
    # The dashboard stays current: a refresh swaps the figures in without reloading, and pauses while hidden.
    page.evaluate("() => { window.smNotReloaded = true; }")
    count = refreshed(page, 0)
    assert page.evaluate("() => window.smNotReloaded") is True
    assert "updated" in page.inner_text("#sm-updated")
    page.evaluate(
        "() => { Object.defineProperty(document, 'hidden', { value: true, configurable: true });"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    assert "(paused)" in page.inner_text("#sm-updated")
    page.evaluate("() => window.smLive.refresh()")
    page.wait_for_timeout(300)
    assert page.get_attribute("#sm-updated", "data-refreshes") == str(count)
    page.evaluate("() => { delete document.hidden; }")

    # The full list, by severity rank; usable on a phone without sideways scrolling.
    page.click("#sm-alerts-all")
    page.wait_for_selector("#result_list")
    first = page.locator("#result_list tbody tr").first.inner_text()
    assert "Critical" in first and "probe-gone" in first
    fits(page, "alert list", width)
    page.screenshot(path=ARTIFACTS / f"console-alert-list-{width}px.png", full_page=True)

    # The alert page: the condition still active, Acknowledge offered, the sensor's chart around the alert.
    page.goto(f"{base}/admin/mlops/alert/{storm['gone_alert'].pk}/change/")
    page.wait_for_selector("#sm-chart[data-drawn='true']")
    assert "still active" in page.inner_text("#sm-condition")
    assert page.locator("button:text-is('Acknowledge')").count() == 1
    assert page.title().startswith("Alert: probe-gone is offline")
    fits(page, "alert page", width)
    page.screenshot(path=ARTIFACTS / f"console-alert-page-{width}px.png", full_page=True)

    # The sensor page: open alerts and anomalies with scores; the chart keeps its zoom through a refresh.
    page.goto(f"{base}/admin/sensors/sensor/{storm['sensor'].pk}/change/")
    page.wait_for_selector("#sm-chart[data-drawn='true']")
    assert "Spike found" in page.inner_text("#sm-sensor-alerts")
    assert "score 0.91" in page.inner_text("#sm-sensor-anomalies")
    span = page.evaluate("() => [window.smSensorChart.scales.x.min, window.smSensorChart.scales.x.max]")
    zoom = [span[0] + (span[1] - span[0]) * 0.4, span[0] + (span[1] - span[0]) * 0.6]
    page.evaluate(f"() => window.smSensorChart.setScale('x', {{ min: {zoom[0]}, max: {zoom[1]} }})")
    refreshed(page, 0)
    page.wait_for_selector("#sm-chart[data-drawn='true']")
    after = page.evaluate("() => [window.smSensorChart.scales.x.min, window.smSensorChart.scales.x.max]")
    assert after == pytest.approx(zoom, abs=1)
    fits(page, "sensor page", width)
    page.screenshot(path=ARTIFACTS / f"console-sensor-page-{width}px.png", full_page=True)

    # The sensor list: on a phone the filters come first and folded, and the list fits.
    page.goto(f"{base}/admin/sensors/sensor/")
    page.wait_for_selector("#result_list")
    filters = page.locator("#changelist-filter").bounding_box()
    results = page.locator("#result_list").bounding_box()
    if device == "phone":
        assert filters["y"] < results["y"] < 1600, (filters, results)
    fits(page, "sensor list", width)
    page.screenshot(path=ARTIFACTS / f"console-sensor-list-{width}px.png", full_page=True)

    # The readings browser keeps a range handed over with an offset.
    pk = storm["sensor"].pk
    page.goto(f"{base}/admin/readings/browse/?sensor={pk}&from=2026-01-01T06%3A00%3A00%2B00%3A00")
    assert page.input_value("input[name=from]").startswith("2026-01-01T")
    page.goto(f"{base}/admin/readings/browse/?sensor=sensor-404")
    assert "No sensor has the ID or number" in page.content()

    assert errors == []
    assert violations == []
    context.close()

"""From alert to repair in a real browser (issue 14): a manager at 1440 px raises a work order from an alert and
assigns it; the technician, on a phone at 390 px, finds it under Mine, starts it, adds a comment and a photo,
records a false alarm and completes it; the alert is resolved with it, and the asset page counts the false alarm.
Every page fits the screen (no sideways scrolling), its links and buttons are at least 44 px to tap, and no page
logs an error or breaks the Content-Security-Policy.

One test, one browser, a few rows: the walk is the whole story, kept short. Reuses tests/admin/test_browser.py's
helpers (Debian's Chromium, Playwright, the CSP watch); every row is written before the browser starts (Django's
ORM refuses to run beside Playwright's event loop) and checked after it stops.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from maintenance.choices import MaintenanceGroup
from maintenance.models import Attachment, WorkOrder
from mlops.models import Alert
from readings.models import FaultLabel
from tests.admin.conftest import fill
from tests.admin.test_browser import (  # noqa: F401 (chromium is a fixture)
    ARGS,
    ARTIFACTS,
    OVERFLOW,
    assert_strict_csp,
    chromium,
    open_context,
)
from tests.factories import AssetFactory, SensorFactory
from tests.maintenance.conftest import NORTH, make_person, open_alert

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)
# Every link and button a technician taps on the work order list and page, with its size.
TAP_TARGETS = """() => [...document.querySelectorAll(
    '#sm-wo-tabs a, #result_list .field-work_order a, .sm-wo-actions button, .sm-wo-form button,'
    + ' .sm-wo-form fieldset label, .sm-wo-file')].map((el) => {
  const box = el.getBoundingClientRect();
  return [el.textContent.trim().slice(0, 30), Math.round(box.width), Math.round(box.height)];
})"""


@pytest.fixture
def story(transactional_db, live_server, settings, tmp_path):
    """A manager and a technician of one site; a sensor there with 8 hours of readings and an open alert."""
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    settings.MEDIA_ROOT = tmp_path
    make_person("boss", MaintenanceGroup.MANAGER, is_staff=True)
    make_person("tech", MaintenanceGroup.TECHNICIAN, is_staff=True, first_name="Tess", last_name="Tech")
    sensor = SensorFactory(sensor_id="pump-vib", asset=AssetFactory(code="PUMP-7", site=NORTH))
    fill(sensor, 8 * 60, value=lambda i: 3.0 + (i % 30) / 10)
    alert = open_alert(sensor)
    Alert.objects.filter(pk=alert.pk).update(opened_at=timezone.now() - timedelta(hours=1))
    return {"url": live_server.url, "alert": alert, "asset": sensor.asset}


def log_in(page, base, username):
    assert_strict_csp(page.goto(f"{base}/admin/login/?next=/admin/"))
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def fits(page, name, width):
    # Charts size themselves to their box once drawn: measure after that.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#sm-chart, .sm-asset-chart')].every((el) => el.dataset.drawn === 'true')"
    )
    scroll_width, inner_width = page.evaluate(OVERFLOW)
    assert scroll_width <= inner_width, f"{name} overflows at {width} px: {scroll_width} > {inner_width}"
    page.screenshot(path=ARTIFACTS / f"work-order-{name}-{width}px.png", full_page=True)


def tappable(page, name):
    targets = page.evaluate(TAP_TARGETS)
    assert targets, name
    small = [target for target in targets if target[1] < 44 or target[2] < 44]
    assert not small, f"{name}: tap targets under 44 px: {small}"


def test_from_alert_to_repair_with_a_technician_on_a_phone(story, chromium):  # noqa: F811
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = story["url"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=ARGS, headless=True)

        # The manager, at a desk: the alert's page, Raise work order, then assign it to the technician.
        context, page, errors, violations = open_context(browser, 1440)
        log_in(page, base, "boss")
        page.goto(f"{base}/admin/mlops/alert/{story['alert'].pk}/change/")
        page.click("button:text-is('Raise work order')")
        page.wait_for_url("**/admin/maintenance/workorder/*/change/")
        work_order_url = page.url.split("#")[0]
        assert page.inner_text("#sm-wo-status") == "Open"
        assert story["alert"].title in page.inner_text("#sm-wo-alert")
        page.wait_for_selector("#sm-chart[data-drawn='true']")
        page.select_option("#sm-wo-assign-form select", label="Tess Tech")
        page.click("#sm-wo-assign-form button")
        page.wait_for_selector("#sm-wo-status:text-is('Assigned')")
        assert page.inner_text("#sm-wo-assignee") == "Tess Tech"
        assert "Assigned to Tess Tech." in page.inner_text("#sm-wo-timeline")
        fits(page, "page-manager", 1440)
        assert errors == [] and violations == []
        context.close()

        # The technician, on a phone: Mine, the work order, start, comment, photo, false alarm.
        context, page, errors, violations = open_context(browser, 390)
        log_in(page, base, "tech")
        page.goto(f"{base}/admin/maintenance/workorder/")
        page.click("#sm-tab-mine")
        page.wait_for_selector("#sm-tab-mine.selected")
        assert page.locator("#result_list tbody tr").count() == 1
        assert page.locator("#result_list .column-asset").is_hidden()  # a phone's list keeps the columns that matter
        due = page.locator("#result_list .field-due").bounding_box()
        assert due["x"] + due["width"] <= 390, "the due date is cut off on a phone"
        fits(page, "list", 390)
        tappable(page, "list")
        page.click("#result_list .field-work_order a")
        page.wait_for_selector("#sm-chart[data-drawn='true']")
        assert page.evaluate("() => window.smSensorChart.width") <= 390
        assert page.locator("#sm-wo-assign-form").count() == 0  # managers assign
        fits(page, "page-assigned", 390)
        tappable(page, "page")

        page.click("button:text-is('Start work')")
        page.wait_for_selector("#sm-wo-status:text-is('In progress')")
        page.fill("#sm-wo-comment-form textarea", "Mount bolt loose; vibration probe knocked.")
        page.click("#sm-wo-comment-form button")
        page.wait_for_selector("#sm-wo-timeline :text('Mount bolt loose')")
        page.set_input_files(
            "#sm-wo-attach-form input[type=file]", {"name": "probe.png", "mimeType": "image/png", "buffer": PNG}
        )
        page.click("#sm-wo-attach-form button")
        link = page.wait_for_selector("#sm-wo-attachments a.sm-wo-file:text-is('probe.png')")
        download = page.request.get(base + link.get_attribute("href"))
        assert download.status == 200 and download.body() == PNG

        page.check("#sm-wo-finding-form input[value=false_alarm]")
        assert page.locator("#sm-wo-finding-form .sm-form-row--fault_kind").is_hidden()
        page.fill("#sm-wo-finding-form textarea[name=cause]", "Probe knocked during cleaning")
        page.fill("#sm-wo-finding-form input[name=time_spent_minutes]", "20")
        fits(page, "finding-form", 390)
        tappable(page, "finding form")
        page.click("#sm-wo-finding-form button")
        page.wait_for_selector("#sm-wo-status:text-is('Done')")
        assert page.inner_text("#sm-wo-outcome") == "False alarm"
        assert page.locator("#sm-wo-finding-form, #sm-wo-status-form").count() == 0
        fits(page, "page-done", 390)

        # The alert closed with the work order; the asset page counts the false alarm.
        page.click(f"#sm-wo-alert a[href$='/mlops/alert/{story['alert'].pk}/change/']")
        assert "Resolved" in page.inner_text(".field-status")
        page.goto(f"{base}/admin/sensors/asset/{story['asset'].pk}/change/")
        assert page.inner_text("#sm-figure-false-alarms") == "100% (1 of 1)"
        fits(page, "asset", 390)
        assert errors == [] and violations == []
        context.close()
        browser.close()

    work_order = WorkOrder.objects.get(alert=story["alert"])
    assert work_order.status == "done" and work_order.finding.outcome == "false_alarm"
    assert Alert.objects.get(pk=story["alert"].pk).status == "resolved"
    assert FaultLabel.objects.get(sensor__sensor_id="pump-vib").kind == "normal"
    assert Attachment.objects.get(work_order=work_order).name == "probe.png"
    assert work_order_url.endswith(f"/maintenance/workorder/{work_order.pk}/change/")

"""The console in a real browser: Debian's Chromium, headless, driven by Playwright against a live server.

Logs in through the login form, opens the dashboard, follows a sensor needing attention to its page and checks
that the chart has drawn its points, hovers and zooms it, and checks that nothing overflows at 1280 px and at a
tablet's 800 px. Every page runs under the Content-Security-Policy without a violation, Swagger UI included.
Screenshots go to var/test-artifacts/ (or $TEST_ARTIFACTS_DIR). Playwright never downloads a
browser: it drives /usr/bin/chromium (or $CHROMIUM), which `make test` installs when missing (.ci/browser).
Without Chromium the test skips, except under CI=true, where it fails.
"""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from readings.choices import FaultKind
from readings.models import FaultLabel
from tests.admin.conftest import PASSWORD, fill, make_staff
from tests.factories import SensorFactory

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", ROOT / "var" / "test-artifacts"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTHS = {"desktop": 1280, "tablet": 800}

# How many pixels of the chart's canvas carry paint: the drawn lines, bands and marks (the empty canvas has none).
PAINTED_PIXELS = """() => {
  const canvas = document.querySelector('#sm-chart canvas');
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
  return painted;
}"""
OVERFLOW = "() => [document.documentElement.scrollWidth, window.innerWidth]"
# Runs before any page script (Playwright injects it; the page's CSP does not apply to it).
CSP_LISTENER = """document.addEventListener('securitypolicyviolation', (e) => window.smReportCsp(
  `${location.pathname}: ${e.violatedDirective} blocked ${e.blockedURI || 'inline code'}`));"""


def watch_csp(context) -> list[str]:
    """Every Content-Security-Policy violation in ``context``'s pages, as it happens (events and console)."""
    violations = []
    context.expose_function("smReportCsp", lambda text: violations.append(text))
    context.add_init_script(CSP_LISTENER)
    context.on(
        "console",
        lambda message: "Content Security Policy" in message.text and violations.append(message.text),
    )
    return violations


def open_context(browser, width):
    """A new browser context ``width`` px wide: its page (20 s default timeout), the page's errors (uncaught and
    console) and the CSP violations, each a list the test asserts empty."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    violations = watch_csp(context)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    return context, page, errors, violations


def assert_strict_csp(response):
    """The page came with the policy, and the policy allows no inline script or style and no eval."""
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "style-src 'self'" in policy, policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, policy


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{CHROMIUM} is missing; `make test` installs Debian's chromium with .ci/browser")
        pytest.skip(f"{CHROMIUM} is missing; install Debian's chromium (or run `make test`, which does)")
    return CHROMIUM


@pytest.fixture
def console(transactional_db, live_server):
    """A staff login and a sensor with two days of readings whose last hour is out of range, with a fault."""
    make_staff("browser-staff")
    sensor = SensorFactory(sensor_id="probe-chart", name="Bearing temperature")
    now = timezone.now().replace(second=0, microsecond=0)
    fill(sensor, 2 * 24 * 60, end=now, value=lambda i: 95.0 if i >= 2 * 24 * 60 - 60 else 40.0 + (i % 120) / 10)
    FaultLabel.objects.create(
        sensor=sensor, kind=FaultKind.SPIKE, start=now - timedelta(hours=3), end=now - timedelta(hours=2)
    )
    for n in range(5):
        fill(SensorFactory(), 30, end=now - timedelta(minutes=n))
    return {"url": live_server.url, "sensor": sensor}


@pytest.fixture
def browser(chromium, console):
    # Imported here: the sync API runs an event loop in this thread, and Django's ORM refuses to work beside one,
    # so every row is written (by the fixtures above) before the browser starts.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=ARGS, headless=True)
        yield browser
        browser.close()


def log_in(page, base_url):
    assert_strict_csp(page.goto(f"{base_url}/admin/"))
    assert "/admin/login/" in page.url
    page.fill("#id_username", "browser-staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")


def test_staff_open_the_dashboard_and_a_sensor_whose_chart_draws_its_points(console, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    violations = watch_csp(context)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, console["url"])

    page.wait_for_selector("#sm-dashboard")
    assert page.inner_text("#sm-attention").count("probe-chart") == 1
    page.screenshot(path=ARTIFACTS / "admin-dashboard.png", full_page=True)

    page.click("#sm-attention a:text-is('probe-chart')")
    page.wait_for_url(f"**/admin/sensors/sensor/{console['sensor'].pk}/change/")
    chart = page.wait_for_selector("#sm-chart[data-drawn='true']")
    assert int(chart.get_attribute("data-drawn-points")) == int(chart.get_attribute("data-points")) >= 1400
    assert page.evaluate("() => window.smSensorChart.data[0].length") <= 2000
    assert page.evaluate(PAINTED_PIXELS) > 5000

    # Hover: the legend shows the values under the cursor.
    box = page.locator("#sm-chart .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    mean = page.locator("#sm-chart .u-legend .u-series").nth(1).locator(".u-value").inner_text()
    assert any(ch.isdigit() for ch in mean), mean
    page.screenshot(path=ARTIFACTS / "admin-sensor-chart.png", full_page=True)

    # Zoom: dragging across the chart narrows it and offers to load the zoomed range in detail.
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5, steps=8)
    page.mouse.up()
    link = page.wait_for_selector("#sm-zoom-load:not([hidden])")
    assert "range=custom" in link.get_attribute("href")
    link.click()
    page.wait_for_selector("#sm-chart[data-drawn='true']")
    assert "range=custom" in page.url and page.evaluate(PAINTED_PIXELS) > 1000

    page.goto(f"{console['url']}/admin/sensors/sensor/")
    page.wait_for_selector(".sm-sparkline[data-drawn='true']")
    assert page.locator(".sm-sparkline[data-drawn='true'] canvas").count() == 6
    page.screenshot(path=ARTIFACTS / "admin-sensor-list.png", full_page=True)
    assert errors == []
    assert violations == []
    context.close()


@pytest.mark.parametrize("device", sorted(WIDTHS))
def test_dashboard_and_sensor_page_fit_the_screen(console, browser, device):
    width = WIDTHS[device]
    context = browser.new_context(viewport={"width": width, "height": 900})
    violations = watch_csp(context)
    page = context.new_page()
    page.set_default_timeout(20_000)
    log_in(page, console["url"])
    pages = {
        "dashboard": "/admin/",
        "sensor": f"/admin/sensors/sensor/{console['sensor'].pk}/change/?range=7d",
        "readings": f"/admin/readings/browse/?sensor={console['sensor'].pk}",
    }
    for name, path in pages.items():
        assert_strict_csp(page.goto(console["url"] + path))
        page.wait_for_load_state("networkidle")
        if name == "sensor":
            page.wait_for_selector("#sm-chart[data-drawn='true']")
            chart_width = page.evaluate("() => window.smSensorChart.width")
            assert chart_width <= width
        scroll_width, inner_width = page.evaluate(OVERFLOW)
        assert scroll_width <= inner_width, f"{name} overflows at {width} px: {scroll_width} > {inner_width}"
        page.screenshot(path=ARTIFACTS / f"admin-{name}-{width}px.png", full_page=True)
    assert violations == []
    context.close()


def test_swagger_ui_renders_and_tries_a_request_under_the_csp(console, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    violations = watch_csp(context)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    assert_strict_csp(page.goto(f"{console['url']}/api/docs/"))
    page.wait_for_selector(".swagger-ui .opblock")
    assert page.locator(".swagger-ui .opblock").count() >= 10
    # Try the token endpoint from the page: Swagger UI's own request (connect-src) and its answer's display work.
    operation = page.locator(".opblock", has=page.locator(".opblock-summary-path", has_text="/api/v1/auth/token")).first
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("textarea.body-param__text").fill('{"username": "nobody", "password": "wrong"}')
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "401"
    page.screenshot(path=ARTIFACTS / "api-docs.png", full_page=False)
    assert errors == []
    assert violations == []
    context.close()

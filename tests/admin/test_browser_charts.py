"""Charts that always draw and assets seen whole, in a real browser (Debian's Chromium, as tests/admin/test_browser.py).

Counts the mean line's pixels for a 5-minute sensor at 1 h and 24 h and for a 1-second sensor at 30 days; checks the
fault kinds' colours, the dark theme's axis labels, tick labels that do not run together when zoomed, touch zoom and
tap on a phone; the asset page's stacked charts with one cursor and one zoom, and the asset and plant pages at 1440 px
and 390 px without overflow. Screenshots go to var/test-artifacts/; no console error and no CSP violation anywhere.
The data are small (a few thousand readings) so the test stays quick on two busy cores.
"""

import re
from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from readings.aggregates import bucket_floor
from readings.choices import FaultKind
from readings.models import FaultLabel
from readings.services import ReadingBatch, readings_insert
from tests.admin.conftest import STAFF_PERMISSIONS, fill, make_staff
from tests.admin.test_browser import (  # noqa: F401 (chromium is a fixture)
    ARGS,
    ARTIFACTS,
    OVERFLOW,
    assert_strict_csp,
    chromium,
    log_in,
    watch_csp,
)
from tests.factories import AssetFactory, SensorFactory

# Pixels of the mean line's colour (static/js/admin/sensor_chart.js MEAN, #3d8fd1), opaque: the line and its points,
# not the translucent bands (the normal band alone fills the plot whatever the data).
LINE_PIXELS = """(selector) => {
  const canvas = document.querySelector(selector + ' canvas');
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let line = 0;
  for (let i = 0; i < data.length; i += 4) {
    const near = Math.abs(data[i] - 61) < 40 && Math.abs(data[i + 1] - 143) < 40 && Math.abs(data[i + 2] - 209) < 40;
    if (data[i + 3] > 200 && near) line++;
  }
  return line;
}"""
# Opaque pixels of one colour anywhere on a chart's canvas.
COLOUR_PIXELS = """([selector, r, g, b]) => {
  const canvas = document.querySelector(selector + ' canvas');
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let found = 0;
  for (let i = 0; i < data.length; i += 4) {
    const near = Math.abs(data[i] - r) < 12 && Math.abs(data[i + 1] - g) < 12 && Math.abs(data[i + 2] - b) < 12;
    if (data[i + 3] > 200 && near) found++;
  }
  return found;
}"""
# Light pixels below the plot: the x axis's labels (dark theme: near-white on #121212).
AXIS_LABEL_PIXELS = """() => {
  const u = window.smSensorChart;
  const canvas = u.root.querySelector('canvas');
  const top = Math.ceil(u.bbox.top + u.bbox.height) + 4;
  const { data } = canvas.getContext('2d').getImageData(0, top, canvas.width, canvas.height - top);
  let light = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 150 && data[i] + data[i + 1] + data[i + 2] > 450) light++;
  return light;
}"""
# The x axis's tick labels and how much room each has: [labels, [gap between neighbours, half their widths summed]].
TICK_ROOM = """() => {
  const u = window.smSensorChart;
  const axis = u.axes[0];
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  const width = (v) => Math.max(...String(v).split('\\n').map((line) => ctx.measureText(line).width));
  const widths = axis._values.map(width);
  const at = axis._splits.map((v) => u.valToPos(v, 'x'));
  const room = [];
  for (let i = 0; i + 1 < at.length; i++) room.push([at[i + 1] - at[i], (widths[i] + widths[i + 1]) / 2]);
  return [axis._values.map(String), room];
}"""
DATE_TICK = r"^(\d{2}:\d{2}(:\d{2})?)?(\n?\d{4}-\d{2}-\d{2})?$|^\d{4}(-\d{2})?$"


def insert(sensor, times, value):
    readings_insert(
        batch=ReadingBatch.from_columns(
            sensor=[sensor.pk] * len(times),
            time=[moment.astimezone(UTC).replace(tzinfo=None) for moment in times],
            value=[value(i) for i in range(len(times))],
            quality=[1.0] * len(times),
        )
    )


@pytest.fixture
def plant(transactional_db, live_server):
    """A pump with a 5-minute vibration sensor (a long degradation with a spike inside it), a 1-minute temperature
    and a 1-second current sensor read in short bursts over 30 days; a second asset on another site."""
    # Allowed to change assets: the asset page then has the editable sensors table, the widest.
    make_staff("browser-staff", permissions=[*STAFF_PERMISSIONS, "sensors.change_asset"])
    now = timezone.now().replace(second=0, microsecond=0)
    asset = AssetFactory(code="PUMP-9", name="Cooling water pump", site="East Plant")
    slow = SensorFactory(asset=asset, sensor_id="vib-5min", sensor_type="vibration", unit="mm/s", sampling_interval=300)
    # Every 5 minutes, each reading 10 s early or late around the buckets' bounds: every other 5-minute bucket is
    # empty, and only bridging those one-bucket holes draws a line.
    base = bucket_floor(now, timedelta(minutes=5)) - timedelta(minutes=5)
    jittered = [base - k * timedelta(minutes=5) + timedelta(seconds=10 if k % 2 == 0 else -10) for k in range(26 * 12)]
    insert(slow, jittered, lambda i: 30.0 + (i % 24) * 1.5)
    FaultLabel.objects.create(sensor=slow, kind=FaultKind.DEGRADATION, start=now - timedelta(hours=10), end=now)
    FaultLabel.objects.create(
        sensor=slow, kind=FaultKind.SPIKE, start=now - timedelta(hours=4), end=now - timedelta(hours=4)
    )
    temperature = SensorFactory(asset=asset, sensor_id="temp-1min", sampling_interval=60)
    fill(temperature, 26 * 60, end=now, value=lambda i: 50.0 + (i % 180) / 10)
    fast = SensorFactory(asset=asset, sensor_id="cur-1s", sensor_type="current", unit="A", sampling_interval=1)
    # Ten one-second readings every half hour for 30 days: each 30-minute bucket of the 30-day chart has readings.
    bursts = [
        now - burst * timedelta(minutes=30) - n * timedelta(seconds=1) for burst in range(30 * 48) for n in range(10)
    ]
    insert(fast, bursts, lambda i: 20.0 + i % 10)
    SensorFactory(asset=AssetFactory(code="FAN-2", site="West Plant"), sensor_id="fan-temp")
    return {"url": live_server.url, "asset": asset, "slow": slow, "fast": fast, "temperature": temperature}


@pytest.fixture
def browser(chromium, plant):  # noqa: F811 (the fixture imported above)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=ARGS, headless=True)
        yield browser
        browser.close()


class Watched:
    """A logged-in page whose errors (uncaught and console) and CSP violations are collected."""

    def __init__(self, browser, base_url, **context_options):
        self.context = browser.new_context(**context_options)
        self.violations = watch_csp(self.context)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.errors = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.base_url = base_url
        log_in(self.page, base_url)

    def open(self, path):
        assert_strict_csp(self.page.goto(self.base_url + path))

    def close(self):
        assert self.errors == []
        assert self.violations == []
        self.context.close()


def chart_drawn(page, selector="#sm-chart"):
    page.wait_for_selector(f"{selector}[data-drawn='true']")


def test_sparse_and_dense_sensors_draw_their_line_at_every_range(plant, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    session = Watched(browser, plant["url"], viewport={"width": 1440, "height": 900})
    page = session.page
    # Least line pixels expected: a line across the plot. Unbridged, the jittered 5-minute sensor (see plant) leaves
    # isolated points only: about 100 pixels at 1 h and 2,500 at 24 h, against 1,300 and 5,000 with its line.
    expected = {("vib-5min", "1h"): 800, ("vib-5min", "24h"): 3500, ("cur-1s", "30d"): 800}
    for sensor, preset in ((plant["slow"], "1h"), (plant["slow"], "24h"), (plant["fast"], "30d")):
        session.open(f"/admin/sensors/sensor/{sensor.pk}/change/?range={preset}")
        chart_drawn(page)
        line = page.evaluate(LINE_PIXELS, "#sm-chart")
        assert line > expected[sensor.sensor_id, preset], f"{sensor.sensor_id} at {preset}: {line} line pixels"
        page.screenshot(path=ARTIFACTS / f"charts-{sensor.sensor_id}-{preset}.png", full_page=True)

    # Each fault kind its own legend entry and colour; the spike's lane shows inside the 10-hour degradation.
    session.open(f"/admin/sensors/sensor/{plant['slow'].pk}/change/?range=24h")
    chart_drawn(page)
    legend = page.inner_text("#sm-chart .u-legend")
    assert "Slow degradation" in legend and "Spike" in legend
    assert page.evaluate(COLOUR_PIXELS, ["#sm-chart", 0xE0, 0x31, 0x31]) > 0  # spike red
    assert page.evaluate(COLOUR_PIXELS, ["#sm-chart", 0xC2, 0x25, 0x5C]) > 0  # degradation
    session.close()


def test_dark_theme_and_ticks_that_do_not_run_together_when_zoomed(plant, browser):
    session = Watched(browser, plant["url"], viewport={"width": 1440, "height": 900}, color_scheme="dark")
    page = session.page
    session.open(f"/admin/sensors/sensor/{plant['temperature'].pk}/change/?range=24h")
    chart_drawn(page)
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(18, 18, 18)"
    assert page.evaluate(AXIS_LABEL_PIXELS) > 100, "axis labels are not readable on the dark background"
    for span in (24 * 3600, 3 * 3600, 20 * 60):
        page.evaluate(
            "(span) => { const u = window.smSensorChart; const max = u.scales.x.max;"
            " u.setScale('x', { min: max - span, max }); }",
            span,
        )
        labels, room = page.evaluate(TICK_ROOM)
        assert len(labels) >= 2
        assert all(gap >= needed for gap, needed in room), f"ticks run together at {span} s: {labels} {room}"
        assert all(re.match(DATE_TICK, label) for label in labels), labels
    page.screenshot(path=ARTIFACTS / "charts-dark-zoomed.png", full_page=True)
    session.close()


def test_on_a_phone_a_drag_zooms_and_a_tap_reads_the_values(plant, browser):
    session = Watched(
        browser,
        plant["url"],
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
        device_scale_factor=2,
    )
    page = session.page
    session.open(f"/admin/sensors/sensor/{plant['temperature'].pk}/change/?range=24h")
    chart_drawn(page)
    page.locator("#sm-chart").scroll_into_view_if_needed()
    box = page.locator("#sm-chart .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.touchscreen.tap(box["x"] + box["width"] * 0.5, y)
    mean = page.locator("#sm-chart .u-legend .u-series").nth(1).locator(".u-value").inner_text()
    assert any(ch.isdigit() for ch in mean), mean

    before = page.evaluate("() => [window.smSensorChart.scales.x.min, window.smSensorChart.scales.x.max]")
    cdp = session.context.new_cdp_session(page)
    x0, x1 = box["x"] + box["width"] * 0.25, box["x"] + box["width"] * 0.6
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y}]})
    for step in range(1, 9):
        x = x0 + (x1 - x0) * step / 8
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    after = page.evaluate("() => [window.smSensorChart.scales.x.min, window.smSensorChart.scales.x.max]")
    assert before[0] < after[0] < after[1] < before[1]
    assert "range=custom" in page.get_attribute("#sm-zoom-load", "href")
    page.screenshot(path=ARTIFACTS / "charts-phone-zoomed.png", full_page=True)
    scroll_width, inner_width = page.evaluate(OVERFLOW)
    assert scroll_width <= inner_width
    session.close()


def test_the_asset_page_shows_its_sensors_on_one_time_axis_with_one_cursor_and_zoom(plant, browser):
    session = Watched(browser, plant["url"], viewport={"width": 1440, "height": 900})
    page = session.page
    session.open(f"/admin/sensors/asset/{plant['asset'].pk}/change/?range=24h")
    page.wait_for_function("() => document.querySelectorAll(\".sm-asset-chart[data-drawn='true']\").length === 3")
    sensor_ids = page.evaluate(
        "() => JSON.parse(document.getElementById('sm-asset-charts-data').textContent).map((chart) => chart.sensor_id)"
    )
    assert sensor_ids == ["cur-1s", "temp-1min", "vib-5min"]  # by type
    for index, sensor_id in enumerate(sensor_ids):
        line = page.evaluate(LINE_PIXELS, f".sm-asset-chart[data-index='{index}']")
        # The 1-second sensor's short bursts, one each half hour, are isolated points in 1-minute buckets.
        assert line > (60 if sensor_id == "cur-1s" else 300), f"{sensor_id}: {line} line pixels"
    # One time axis: the same x pixels for the same instant on every chart.
    lefts = page.evaluate(
        "() => window.smAssetCharts.map((u) => [u.bbox.left, u.bbox.width, u.scales.x.min, u.scales.x.max])"
    )
    assert len({tuple(value) for value in lefts}) == 1, lefts

    # One cursor: hovering one chart reads the same instant on all.
    box = page.locator(".sm-asset-chart[data-index='0'] .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5)
    page.wait_for_function("() => window.smAssetCharts.every((u) => u.cursor.left > 0)")
    cursors = page.evaluate("() => window.smAssetCharts.map((u) => Math.round(u.posToVal(u.cursor.left, 'x') / 60))")
    assert max(cursors) - min(cursors) <= 5, cursors
    # One zoom: dragging across one chart narrows them all.
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5, steps=6)
    page.mouse.up()
    zoomed = page.evaluate("() => window.smAssetCharts.map((u) => [u.scales.x.min, u.scales.x.max])")
    assert len({tuple(value) for value in zoomed}) == 1 and zoomed[0][0] > lefts[0][2], zoomed
    assert page.locator("#sm-zoom-load:not([hidden])").count() == 1
    page.screenshot(path=ARTIFACTS / "asset-page-zoomed.png", full_page=True)
    session.close()


@pytest.mark.parametrize("width", [1440, 1280, 390])
def test_asset_and_plant_pages_fit_the_screen(plant, browser, width):
    session = Watched(browser, plant["url"], viewport={"width": width, "height": 900}, has_touch=width < 800)
    page = session.page
    pages = {
        "asset": f"/admin/sensors/asset/{plant['asset'].pk}/change/?range=7d",
        "plant": "/admin/plant/?site=East+Plant",
    }
    for name, path in pages.items():
        session.open(path)
        page.wait_for_load_state("networkidle")
        if name == "asset":
            page.wait_for_function(
                "() => document.querySelectorAll(\".sm-asset-chart[data-drawn='true']\").length === 3"
            )
            assert all(w <= width for w in page.evaluate("() => window.smAssetCharts.map((u) => u.width)"))
        else:
            assert page.locator(f"a[href$='/admin/sensors/asset/{plant['asset'].pk}/change/']").count() == 1
            assert page.locator(f"a[href$='/admin/sensors/sensor/{plant['slow'].pk}/change/']").is_visible()
        scroll_width, inner_width = page.evaluate(OVERFLOW)
        assert scroll_width <= inner_width, f"{name} overflows at {width} px: {scroll_width} > {inner_width}"
        page.screenshot(path=ARTIFACTS / f"{name}-page-{width}px.png", full_page=True)
    session.close()

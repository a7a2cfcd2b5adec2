"""Small things that cost trust (issue 15): the readings browser keeps the range it is handed and answers a bad
sensor with a message (accepting the sensor's external ID), page titles say what the page is, a favicon served
by the app, figures with thousands separators (the dashboard, chart captions)."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.test import override_settings

from readings.admin_views import LocalDateTimeInput
from tests.admin.conftest import fill
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db
END = datetime(2026, 1, 1, tzinfo=UTC)


def input_value(html: str, name: str) -> str:
    tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', html).group(0)
    match = re.search(r'value="([^"]*)"', tag)
    return match.group(1) if match else ""


@override_settings(TIME_ZONE="Europe/Paris")
def test_the_browser_keeps_a_range_handed_over_with_an_offset(staff_client):
    sensor = SensorFactory()
    fill(sensor, 12 * 60, end=END)
    # What "Browse the readings of this range" links to: ISO 8601 with +00:00, which datetime-local inputs reject.
    query = urlencode({"sensor": sensor.pk, "from": "2025-12-31T18:00:00+00:00", "to": "2025-12-31T20:00:00+00:00"})
    response = staff_client.get(f"/admin/readings/browse/?{query}")
    html = response.content.decode()
    # Shown in the current time zone (Paris, UTC+1) in the form the input accepts, so "Show readings" keeps it.
    assert input_value(html, "from") == "2025-12-31T19:00:00"
    assert input_value(html, "to") == "2025-12-31T21:00:00"
    rows = response.context["rows"]
    assert rows[0]["time"] == datetime(2025, 12, 31, 19, 59, tzinfo=UTC)
    # Pressing "Show readings" submits what the inputs show: the same range.
    shown = {"sensor": sensor.pk, "from": input_value(html, "from"), "to": input_value(html, "to")}
    again = staff_client.get("/admin/readings/browse/?" + urlencode(shown))
    assert again.context["rows"][0]["time"] == rows[0]["time"]
    assert again.context["rows"][-1]["time"] == rows[-1]["time"] == datetime(2025, 12, 31, 18, 20, tzinfo=UTC)


def test_a_plus_turned_space_by_a_query_string_is_read_as_the_offset(staff_client):
    sensor = SensorFactory()
    fill(sensor, 120, end=END)
    response = staff_client.get(
        f"/admin/readings/browse/?sensor={sensor.pk}&from=2025-12-31T23:00:00+00:00&to=2026-01-01T00:00:00+00:00"
    )
    assert response.status_code == 200 and len(response.context["rows"]) == 60


def test_the_datetime_local_input_shows_iso_values_in_the_current_time_zone():
    widget = LocalDateTimeInput()
    with override_settings(TIME_ZONE="UTC"):
        assert widget.format_value("2026-01-01T06:00:00+00:00") == "2026-01-01T06:00:00"
        assert widget.format_value("2026-01-01T06:00") == "2026-01-01T06:00:00"
        assert widget.format_value("not a date") == "not a date"
        assert widget.format_value(END) == "2026-01-01T00:00:00"


def test_the_browser_accepts_the_sensors_external_id(staff_client):
    sensor = SensorFactory(sensor_id="sensor-001")
    fill(sensor, 30, end=END)
    response = staff_client.get("/admin/readings/browse/?sensor=sensor-001")
    assert response.status_code == 200
    assert response.context["sensor"] == sensor and len(response.context["rows"]) == 30
    # The widget shows the sensor chosen, by its number, as the autocomplete expects.
    assert f'<option value="{sensor.pk}" selected>' in response.content.decode()


@pytest.mark.parametrize("value", ["sensor-404", "12abc", "9" * 30, "'; drop"])
def test_an_unknown_sensor_gets_a_message_not_an_error(staff_client, value):
    response = staff_client.get("/admin/readings/browse/?" + urlencode({"sensor": value}))
    assert response.status_code == 200
    assert "No sensor has the ID or number" in response.content.decode()
    assert "rows" not in response.context


def test_page_titles_say_what_the_page_is(superuser_client):
    sensor = SensorFactory(sensor_id="probe-title")
    fill(sensor, 10)
    pages = {
        "/admin/sensors/sensor/": "Sensors",
        f"/admin/sensors/sensor/{sensor.pk}/change/": "Sensor probe-title",
        "/admin/sensors/asset/": "Assets",
        f"/admin/sensors/asset/{sensor.asset.pk}/change/": f"Asset {sensor.asset}",
        "/admin/mlops/alert/": "Alerts",
        "/admin/mlops/anomaly/": "Anomalies",
        "/admin/mlops/scoringrun/": "Scoring runs",
    }
    for url, title in pages.items():
        response = superuser_client.get(url)
        assert response.status_code == 200, url
        assert response.context["title"] == title, url
        assert f"<title>{title} |" in response.content.decode(), url


def test_the_favicon_is_served_by_the_app(client):
    html = client.get("/admin/login/").content.decode()
    href = re.search(r'<link rel="icon"[^>]*href="([^"]+)"', html).group(1)
    assert href.startswith("/static/") and href.endswith(".svg")
    assert client.get("/favicon.ico").status_code in (301, 302)


def test_dashboard_figures_have_thousands_separators(staff_client):
    sensor = SensorFactory()
    fill(sensor, 1500, step=timedelta(seconds=30))
    html = staff_client.get("/admin/").content.decode()
    assert re.search(r'id="sm-readings-24h">1,500<', html)


def test_the_sensor_pages_chart_caption_groups_its_thousands(staff_client, live_sensor):
    # A reading a minute, seen over the default 24 hours: a bucket a minute (never finer than the data).
    html = staff_client.get(f"/admin/sensors/sensor/{live_sensor.pk}/change/").content.decode()
    assert re.search(r"\b1,44\d buckets of 1m\b", html), re.findall(r"[\d,]+ buckets? of [^,.]*", html)

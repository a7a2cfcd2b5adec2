"""A page that stays current (issue 15): the dashboard's and the sensor page's JSON endpoints, polled by
static/js/admin/live.js while the page is open, answer the page's parts rendered afresh and the chart's data."""

import pytest

from tests.admin.conftest import fill
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db


def test_the_dashboard_names_its_live_endpoint_and_the_endpoint_answers_fresh_figures(staff_client, live_sensor):
    html = staff_client.get("/admin/").content.decode()
    assert 'data-live-url="/admin/live/dashboard.json"' in html and "js/admin/live.js" in html
    data = staff_client.get("/admin/live/dashboard.json").json()
    assert data["replace"] == ["#sm-dashboard"]
    assert 'id="sm-dashboard"' in data["html"] and 'id="sm-attention"' in data["html"]
    assert 'id="sm-readings-24h">1,440<' in data["html"]  # the last day of the live sensor, grouped
    hot = SensorFactory(sensor_id="hot-live")
    fill(hot, 10, value=lambda i: 95.0)
    data = staff_client.get("/admin/live/dashboard.json").json()
    assert "hot-live" in data["html"]  # a sensor that went out of range since the page loaded


def test_the_sensor_pages_live_endpoint_answers_its_parts_and_chart_for_the_same_range(staff_client, live_sensor):
    page = staff_client.get(f"/admin/sensors/sensor/{live_sensor.pk}/change/?range=1h").content.decode()
    assert f'data-live-url="/admin/live/sensors/{live_sensor.pk}.json"' in page
    data = staff_client.get(f"/admin/live/sensors/{live_sensor.pk}.json?range=1h").json()
    assert ".sm-signal-summary" in data["replace"] and "table.sm-latest" in data["replace"]
    assert 'class="sm-signal-summary"' in data["html"] and "sm-latest" in data["html"]
    chart = data["chart"]
    assert chart["sensor_id"] == "live-001" and chart["end"] - chart["start"] == 3600
    assert chart["points"] >= 55
    newest = chart["end"]
    later = staff_client.get(f"/admin/live/sensors/{live_sensor.pk}.json?range=1h").json()["chart"]
    assert later["end"] >= newest  # the range moves with now


def test_the_live_endpoints_need_the_pages_permissions(user_client, staff_client, live_sensor):
    assert user_client.get("/admin/live/dashboard.json").status_code == 302  # to the login page
    assert user_client.get(f"/admin/live/sensors/{live_sensor.pk}.json").status_code == 302
    assert staff_client.get("/admin/live/sensors/999999.json").status_code == 404

"""Only staff reach the console: anonymous visitors and plain users are sent to the login page, staff get in."""

import pytest
from django.test import Client

from tests.admin.conftest import make_staff

pytestmark = pytest.mark.django_db


def console_urls(sensor) -> dict[str, str]:
    return {
        "dashboard": "/admin/",
        "sensor list": "/admin/sensors/sensor/",
        "sensor page": f"/admin/sensors/sensor/{sensor.pk}/change/",
        "readings browser": f"/admin/readings/browse/?sensor={sensor.pk}",
        "csv export": f"/admin/sensors/sensor/{sensor.pk}/readings.csv?range=24h",
    }


@pytest.mark.parametrize("page", ["dashboard", "sensor list", "sensor page", "readings browser", "csv export"])
def test_anonymous_visitor_is_sent_to_the_login_page(live_sensor, page):
    url = console_urls(live_sensor)[page]
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize("page", ["dashboard", "sensor list", "sensor page", "readings browser", "csv export"])
def test_plain_user_is_refused(live_sensor, user_client, page):
    response = user_client.get(console_urls(live_sensor)[page])
    # Django's admin answers a logged-in non-staff user with its login page (to switch accounts), never the page.
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize("page", ["dashboard", "sensor list", "sensor page", "readings browser", "csv export"])
def test_staff_get_in(live_sensor, staff_client, page):
    response = staff_client.get(console_urls(live_sensor)[page])
    assert response.status_code == 200
    if page == "csv export":
        assert response["Content-Type"].startswith("text/csv")
        assert b"".join(response.streaming_content).startswith(b"sensor_id,time,value,quality")


@pytest.mark.parametrize("page", ["sensor page", "readings browser", "csv export"])
def test_staff_without_the_right_to_view_readings_see_no_readings(live_sensor, page):
    client = Client()
    client.force_login(make_staff("fleet-only", ["sensors.view_sensor", "sensors.view_asset"]))
    response = client.get(console_urls(live_sensor)[page])
    if page == "sensor page":
        # The sensor's fields, without its signal panel.
        assert response.status_code == 200
        assert b'id="sm-chart"' not in response.content
    else:
        assert response.status_code == 403


def test_staff_without_fleet_rights_get_no_dashboard_figures(live_sensor):
    client = Client()
    client.force_login(make_staff("nobody", []))
    response = client.get("/admin/")
    assert response.status_code == 200
    assert b'id="sm-dashboard"' not in response.content


def test_login_form_leads_staff_to_the_dashboard(live_sensor, staff):
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/", {"username": staff.username, "password": "pw-console-8472", "next": "/admin/"}
    )
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert b'id="sm-dashboard"' in client.get("/admin/").content

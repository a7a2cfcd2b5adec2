"""Site access in the admin console: a person given North Plant sees North's sites, assets, sensors, readings,
fault labels, alerts, anomalies and work orders in every list, page, chart, export, the readings browser, the
dashboard and the plant tree, and none of South's; South's objects are not found (404). Per group."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from maintenance.choices import MaintenanceGroup
from maintenance.services import work_order_create
from mlops import selectors as mlops_selectors
from readings import selectors
from readings.models import FaultLabel
from tests.admin.conftest import fill
from tests.factories import AssetFactory, SensorFactory
from tests.maintenance.conftest import NORTH, SOUTH, make_anomaly, make_person, open_alert

pytestmark = pytest.mark.django_db

GROUPS = [MaintenanceGroup.MANAGER, MaintenanceGroup.TECHNICIAN, MaintenanceGroup.VIEWER]


@pytest.fixture(autouse=True)
def alert_providers():
    # The dashboard's alerts as mlops provides them (tests/admin's conftest leaves providers out).
    selectors.register_alerts(mlops_selectors.dashboard_alerts)
    selectors.register_alert_summary(mlops_selectors.alerts_summary)


@pytest.fixture
def plant(db):
    """One sensor per site, each with readings up to now, a fault label, an anomaly, an open alert and a work
    order; every name says its site."""
    now = timezone.now()
    rows = {}
    for site, tag in ((NORTH, "north"), (SOUTH, "south")):
        asset = AssetFactory(site=site, code=f"{tag}-pump", name=f"{tag} pump")
        sensor = SensorFactory(asset=asset, sensor_id=f"{tag}-temp", name=f"{tag} temperature")
        fill(sensor, 30, value=lambda i: 500.0)  # out of range: on the dashboard's attention list
        FaultLabel.objects.create(sensor=sensor, kind="spike", start=now - timedelta(hours=2), end=now)
        anomaly = make_anomaly(sensor, start=now - timedelta(hours=1), end=now)
        alert = open_alert(sensor, anomaly=anomaly)
        manager = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser(
            "root", password="pw-root-123"
        )
        work_order = work_order_create(asset=asset, sensor=sensor, title=f"{tag} job", user=manager)
        rows[tag] = {"asset": asset, "sensor": sensor, "alert": alert, "anomaly": anomaly, "work_order": work_order}
    return rows


def console_for(group) -> Client:
    person = make_person(f"{group[:4].lower()}-north", group, sites=(NORTH,), is_staff=True)
    client = Client()
    client.force_login(person)
    return client


def text(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


LISTS = [
    "/admin/sensors/asset/",
    "/admin/sensors/sensor/",
    "/admin/readings/faultlabel/",
    "/admin/mlops/alert/",
    "/admin/mlops/anomaly/",
    "/admin/maintenance/workorder/",
    "/admin/plant/",
    "/admin/",
]


@pytest.mark.parametrize("group", GROUPS)
def test_each_group_sees_only_its_sites_in_the_console(plant, group):
    client = console_for(group)
    for url in LISTS:
        page = text(client, url)
        assert "north-" in page or "north " in page, url
        assert "south" not in page and SOUTH not in page, url

    north, south = plant["north"], plant["south"]
    pages = [
        "/admin/sensors/asset/{asset.pk}/change/",
        "/admin/sensors/sensor/{sensor.pk}/change/",
        "/admin/sensors/sensor/{sensor.pk}/readings.csv?range=24h",
        "/admin/live/sensors/{sensor.pk}.json",
        "/admin/mlops/alert/{alert.pk}/change/",
        "/admin/mlops/anomaly/{anomaly.pk}/change/",
        "/admin/maintenance/workorder/{work_order.pk}/change/",
    ]
    for page in pages:
        assert "south" not in text(client, page.format(**north)), page
        assert client.get(page.format(**south)).status_code == 404, page
    # Nor a missing object's page, whose answer is the same.
    assert client.get("/admin/sensors/sensor/999999/change/").status_code == 404

    # The readings browser: South's sensor is no sensor, by number or by ID.
    for value in (south["sensor"].pk, south["sensor"].sensor_id):
        page = text(client, f"/admin/readings/browse/?sensor={value}")
        assert 'id="sm-readings"' not in page
        assert "No sensor has the ID or number" in page or "Select a valid choice" in page
    assert 'id="sm-readings"' in text(client, f"/admin/readings/browse/?sensor={north['sensor'].pk}")

    # The export action with South's sensor slipped into the selection exports North's alone.
    response = client.post(
        "/admin/sensors/sensor/",
        {
            "action": "export_readings_csv",
            "_selected_action": [north["sensor"].pk, south["sensor"].pk],
            "apply": "1",
            "range": "24h",
        },
    )
    csv = b"".join(response.streaming_content).decode()
    assert "north-temp" in csv and "south-temp" not in csv

    # The site filters offer North alone.
    for url in ("/admin/sensors/sensor/", "/admin/mlops/alert/", "/admin/maintenance/workorder/"):
        assert "South+Plant" not in text(client, url), url


def test_managers_cannot_act_on_another_sites_alert(plant):
    client = console_for(MaintenanceGroup.MANAGER)
    south_alert = plant["south"]["alert"]
    assert client.post(f"/admin/mlops/alert/{south_alert.pk}/acknowledge/").status_code == 404
    south_alert.refresh_from_db()
    assert south_alert.status == "open"
    north_alert = plant["north"]["alert"]
    assert client.post(f"/admin/mlops/alert/{north_alert.pk}/acknowledge/").status_code == 302
    north_alert.refresh_from_db()
    assert north_alert.status == "acknowledged"


def test_fault_label_form_offers_only_the_sites_sensors(plant):
    client = console_for(MaintenanceGroup.MANAGER)
    now = timezone.now()
    form = {"kind": "spike", "start_0": f"{now:%Y-%m-%d}", "start_1": "00:00:00", "source": "staff"}
    response = client.post("/admin/readings/faultlabel/add/", {**form, "sensor": plant["south"]["sensor"].pk})
    assert response.status_code == 200 and b"Select a valid choice" in response.content
    assert not FaultLabel.objects.filter(sensor=plant["south"]["sensor"], source="staff").exists()


def test_superusers_and_people_without_a_group_see_every_site(plant):
    everyone = [
        User.objects.get(is_superuser=True),
        User.objects.create_user("integrator", password="pw-integrator-1", is_staff=True),
    ]
    for person in everyone:
        person.user_permissions.add(*_view_permissions())
        client = Client()
        client.force_login(person)
        for url in ("/admin/sensors/sensor/", "/admin/mlops/alert/", "/admin/plant/"):
            page = text(client, url)
            assert "north" in page and "south" in page, (person, url)


def _view_permissions():
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(
        codename__in=["view_sensor", "view_asset", "view_reading", "view_alert", "view_anomaly"]
    )


def test_dashboard_counts_only_the_sites_given(plant):
    SensorFactory(asset=plant["south"]["asset"], sensor_id="south-extra")
    client = console_for(MaintenanceGroup.VIEWER)
    context = client.get("/admin/").context["dashboard"]
    assert context["sensor_total"] == 1 and context["asset_total"] == 1
    assert context["readings_24h"] == 30
    assert [item["sensor_id"] for item in context["attention"]["items"]] == ["north-temp"]
    assert [alert["sensor_id"] for alert in context["attention"]["alerts"]] == ["north-temp"]
    [summary] = context["alert_summaries"]
    assert summary["total"] == 1 and [group["site"] for group in summary["groups"]] == [NORTH]

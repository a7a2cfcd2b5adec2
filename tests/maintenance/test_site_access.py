"""Site access in the read API beyond work orders: assets, sensors, readings (and CSV), latest, fleet status,
fault labels and anomalies show a person only the sites they are given, per group; API keys keep their limits."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from maintenance.choices import MaintenanceGroup
from readings.models import FaultLabel
from tests.factories import ReadingFactory
from tests.maintenance.conftest import NORTH, SOUTH, client_for, ensure_groups, make_anomaly

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(north_sensor, south_sensor):
    now = timezone.now()
    for sensor in (north_sensor, south_sensor):
        ReadingFactory(sensor=sensor, time=now - timedelta(minutes=5))
        FaultLabel.objects.create(sensor=sensor, kind="spike", start=now - timedelta(hours=1), end=now)
        make_anomaly(sensor, start=now - timedelta(hours=1), end=now)
    return north_sensor, south_sensor


def seen(client) -> dict[str, set]:
    def rows(url):
        response = client.get(url)
        assert response.status_code == 200, (url, response.content)
        body = response.json()
        return body["results"] if isinstance(body, dict) and "results" in body else body

    return {
        "assets": {row["site"] for row in rows("/api/v1/assets")},
        "sensors": {row["sensor_id"] for row in rows("/api/v1/sensors")},
        "labels": {row["sensor_id"] for row in rows("/api/v1/fault-labels")},
        "anomalies": {row["sensor_id"] for row in rows("/api/v1/anomalies")},
    }


@pytest.mark.parametrize("group", [MaintenanceGroup.MANAGER, MaintenanceGroup.TECHNICIAN, MaintenanceGroup.VIEWER])
def test_each_group_sees_only_its_sites(fleet, group):
    from tests.maintenance.conftest import make_person

    north_sensor, south_sensor = fleet
    person = make_person(f"{group[:4].lower()}-north", group, sites=(NORTH,), is_staff=True)
    client = client_for(person)
    assert seen(client) == {
        "assets": {NORTH},
        "sensors": {north_sensor.sensor_id},
        "labels": {north_sensor.sensor_id},
        "anomalies": {north_sensor.sensor_id},
    }
    for suffix in ("readings", "latest", "aggregates?bucket=1h"):
        assert client.get(f"/api/v1/sensors/{south_sensor.sensor_id}/{suffix}").status_code == 404, suffix
    assert client.get(f"/api/v1/sensors/{north_sensor.sensor_id}/readings").status_code == 200
    assert client.get(f"/api/v1/sensors/{south_sensor.sensor_id}").status_code == 404
    csv = client.get(f"/api/v1/sensors/{south_sensor.sensor_id}/readings", HTTP_ACCEPT="text/csv")
    assert csv.status_code == 404


def test_group_members_without_sites_see_nothing_and_all_sites_see_everything(fleet):
    from tests.maintenance.conftest import make_person

    unplaced = User.objects.create_user("unplaced", password="pw-unplaced-1", is_staff=True)
    ensure_groups()
    unplaced.groups.add(Group.objects.get(name=MaintenanceGroup.VIEWER))
    assert seen(client_for(User.objects.get(pk=unplaced.pk)))["sensors"] == set()
    everywhere = make_person("everywhere", MaintenanceGroup.MANAGER, sites=(), all_sites=True)
    assert seen(client_for(everywhere))["assets"] == {NORTH, SOUTH}


def test_accounts_in_no_group_and_superusers_are_not_limited(fleet):
    integrator = User.objects.create_user("integrator", password="pw-integrator-1")
    root = User.objects.create_superuser("root", password="pw-root-123")
    for person in (integrator, root):
        assert seen(client_for(person))["assets"] == {NORTH, SOUTH}


def test_fleet_writes_follow_the_groups_permissions(fleet):
    from tests.maintenance.conftest import make_person

    north_sensor, _ = fleet
    body = {"name": "Renamed"}
    url = f"/api/v1/assets/{north_sensor.asset_id}"
    for group in (MaintenanceGroup.VIEWER, MaintenanceGroup.TECHNICIAN):
        person = make_person(f"w-{group[:4].lower()}", group, is_staff=True)
        assert client_for(person).patch(url, body, format="json").status_code == 403
    manager = make_person("w-manager", MaintenanceGroup.MANAGER, is_staff=True)
    assert client_for(manager).patch(url, body, format="json").status_code == 200
    assert client_for(manager).delete(url).status_code == 403  # managers do not delete assets

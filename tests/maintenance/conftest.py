"""People in the maintenance groups (created by the data migration), each given sites; alerts to raise from."""

import importlib

import pytest
from django.contrib.auth.models import Group, Permission, User
from rest_framework.test import APIClient

from maintenance.choices import MaintenanceGroup
from mlops.models import Alert, Anomaly
from sensors.models import UserSites
from tests.factories import AssetFactory, SensorFactory

NORTH, SOUTH = "North Plant", "South Plant"


def ensure_groups() -> None:
    """The groups maintenance's data migration creates (0002_groups: their permissions, by the same list). A
    transactional test (live server, browser) empties every table as it ends, data migrations' rows included:
    Django runs those tests after the others for that reason, but with the suite in several processes
    (tests/parallel.py) a process may run one before these."""
    migration = importlib.import_module("maintenance.migrations.0002_groups")
    if Group.objects.filter(name__in=migration.GROUPS).count() == len(migration.GROUPS):
        return
    for name, codes in migration.GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for code in codes:
            app_label, codename = code.split(".")
            group.permissions.add(*Permission.objects.filter(content_type__app_label=app_label, codename=codename))


@pytest.fixture
def groups(db):
    """The maintenance groups, for tests that use them without make_person (the benchmark's plant)."""
    ensure_groups()


def make_person(name: str, group: str | None, *, sites=(NORTH,), all_sites=False, **fields) -> User:
    ensure_groups()
    user = User.objects.create_user(name, email=f"{name}@example.com", password=f"pw-{name}-123", **fields)
    if group:
        user.groups.add(Group.objects.get(name=group))
    UserSites.objects.create(user=user, sites=list(sites), all_sites=all_sites)
    return User.objects.get(pk=user.pk)  # fresh: no permission cache


@pytest.fixture
def manager(db):
    return make_person("manager", MaintenanceGroup.MANAGER, is_staff=True)


@pytest.fixture
def technician(db):
    return make_person("tech", MaintenanceGroup.TECHNICIAN, is_staff=True)


@pytest.fixture
def other_technician(db):
    return make_person("tech2", MaintenanceGroup.TECHNICIAN, is_staff=True)


@pytest.fixture
def south_technician(db):
    return make_person("southtech", MaintenanceGroup.TECHNICIAN, sites=(SOUTH,), is_staff=True)


@pytest.fixture
def viewer(db):
    return make_person("viewer", MaintenanceGroup.VIEWER, is_staff=True)


@pytest.fixture
def north_sensor(db):
    return SensorFactory(asset=AssetFactory(site=NORTH))


@pytest.fixture
def south_sensor(db):
    return SensorFactory(asset=AssetFactory(site=SOUTH))


def open_alert(sensor, *, severity="critical", anomaly=None, kind="anomaly") -> Alert:
    # A row, not alert_raise: its mail would go out after commit.
    return Alert.objects.create(
        sensor=sensor, kind=kind, severity=severity, title=f"Anomaly on {sensor.sensor_id}", anomaly=anomaly
    )


def make_anomaly(sensor, *, start, end, score=0.9) -> Anomaly:
    return Anomaly.objects.create(
        sensor=sensor, start=start, end=end, score=score, model_name="m", model_version="1", detector="normal"
    )


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client

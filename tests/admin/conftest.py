"""Admin console fixtures: maintenance staff (staff with view rights), a superuser, a plain user, and sensors
with readings up to now."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from readings import selectors
from readings.services import ReadingBatch, readings_insert
from tests.factories import SensorFactory

STAFF_PERMISSIONS = [
    "sensors.view_asset",
    "sensors.view_sensor",
    "sensors.change_sensor",
    "readings.view_reading",
    "readings.view_faultlabel",
]
PASSWORD = "pw-console-8472"


@pytest.fixture(autouse=True)
def no_providers(monkeypatch):
    """The console as readings alone makes it: apps that registered alerts, chart marks or flags (mlops,
    smartmaint) are left out, and tests that need a provider register their own."""
    monkeypatch.setattr(selectors, "_alert_providers", [])
    monkeypatch.setattr(selectors, "_chart_mark_providers", [])
    monkeypatch.setattr(selectors, "_flag_providers", [])


@pytest.fixture(autouse=True)
def clear_cache():
    # Latest readings and the recent count are cached in Redis; each test starts clean.
    cache.clear()
    yield
    cache.clear()


def make_staff(username="maintainer", permissions=STAFF_PERMISSIONS) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def staff(db):
    return make_staff()


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def user_client(db):
    client = Client()
    client.force_login(User.objects.create_user("reader", password=PASSWORD))
    return client


@pytest.fixture
def superuser_client(db):
    client = Client()
    client.force_login(User.objects.create_superuser("root", password=PASSWORD))
    return client


def fill(sensor, count, *, end=None, step=timedelta(minutes=1), value=lambda i: float(i)) -> list[datetime]:
    """``count`` readings of ``sensor`` one ``step`` apart, the last at ``end`` (default: now, whole minute)."""
    end = end or timezone.now().replace(second=0, microsecond=0)
    times = [end - step * (count - 1 - i) for i in range(count)]
    readings_insert(
        batch=ReadingBatch.from_columns(
            sensor=[sensor.pk] * count,
            time=[t.astimezone(UTC).replace(tzinfo=None) for t in times],
            value=[value(i) for i in range(count)],
            quality=[1.0] * count,
        )
    )
    return times


@pytest.fixture
def live_sensor(db):
    """A sensor reading every minute for the last two days, online, within its normal range (10 to 80)."""
    sensor = SensorFactory(sensor_id="live-001")
    fill(sensor, 2 * 24 * 60, value=lambda i: 20.0 + (i % 60) / 2)
    return sensor

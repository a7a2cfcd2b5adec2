"""Constraints of the fleet model, enforced by the database."""

import pytest
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from tests.factories import AssetFactory, ReadingFactory, SensorFactory

pytestmark = pytest.mark.django_db


def test_sensor_id_is_unique():
    SensorFactory(sensor_id="sensor-001")
    with pytest.raises(IntegrityError), transaction.atomic():
        SensorFactory(sensor_id="sensor-001")


def test_asset_code_is_unique():
    AssetFactory(code="PUMP-01")
    with pytest.raises(IntegrityError), transaction.atomic():
        AssetFactory(code="PUMP-01")


def test_normal_range_low_above_high_is_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        SensorFactory(normal_min=90.0, normal_max=10.0)


def test_open_ended_normal_range_is_allowed():
    sensor = SensorFactory(normal_min=None, normal_max=5.0)
    assert sensor.pk


def test_deleting_an_asset_with_sensors_is_refused():
    sensor = SensorFactory()
    with pytest.raises(ProtectedError):
        sensor.asset.delete()


def test_deleting_a_sensor_removes_its_readings():
    reading = ReadingFactory()
    sensor = reading.sensor
    sensor.delete()
    assert not type(reading).objects.filter(sensor_id=sensor.pk).exists()

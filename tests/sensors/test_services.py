"""Writes to the fleet."""

import pytest

from sensors.choices import SensorStatus
from sensors.models import Sensor
from sensors.services import sensor_set_status
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db


def test_set_status_changes_only_sensors_not_already_in_it(django_assert_num_queries):
    active, parked = SensorFactory(), SensorFactory(status=SensorStatus.MAINTENANCE)
    parked_at = parked.updated_at
    with django_assert_num_queries(4):  # savepoint, SELECT ... FOR UPDATE, UPDATE, release
        changed = sensor_set_status(sensors=Sensor.objects.all(), status=SensorStatus.MAINTENANCE)
    assert changed == [active.pk]
    active.refresh_from_db()
    parked.refresh_from_db()
    assert active.status == parked.status == SensorStatus.MAINTENANCE
    assert active.updated_at > parked.updated_at == parked_at


def test_set_status_refuses_an_unknown_status():
    with pytest.raises(ValueError, match="status must be one of"):
        sensor_set_status(sensors=Sensor.objects.all(), status="broken")

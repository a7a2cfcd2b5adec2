"""The readings table: one reading per (sensor, time), quality in [0, 1]."""

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction

from readings.models import Reading
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_duplicate_sensor_and_time_is_refused():
    sensor = SensorFactory()
    Reading.objects.create(sensor=sensor, time=T0, value=1.0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Reading.objects.create(sensor=sensor, time=T0, value=2.0)
    assert Reading.objects.get(sensor=sensor, time=T0).value == 1.0


def test_same_time_on_two_sensors_is_fine():
    a, b = SensorFactory(), SensorFactory()
    Reading.objects.bulk_create([Reading(sensor=a, time=T0, value=1.0), Reading(sensor=b, time=T0, value=2.0)])
    assert Reading.objects.filter(time=T0).count() == 2


def test_retried_bulk_insert_adds_nothing():
    sensor = SensorFactory()
    batch = [Reading(sensor=sensor, time=T0.replace(minute=m), value=float(m)) for m in range(10)]
    Reading.objects.bulk_create(batch, ignore_conflicts=True)
    Reading.objects.bulk_create(batch, ignore_conflicts=True)
    assert Reading.objects.filter(sensor=sensor).count() == 10


@pytest.mark.parametrize("quality", [-0.1, 1.5])
def test_quality_outside_unit_interval_is_refused(quality):
    sensor = SensorFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Reading.objects.create(sensor=sensor, time=T0, value=1.0, quality=quality)


def test_newest_first_for_one_sensor_uses_the_primary_key_index():
    sensor = SensorFactory()
    qs = Reading.objects.filter(sensor=sensor).order_by("-time")[:10]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = qs.explain()
    assert "readings_reading_pkey" in plan

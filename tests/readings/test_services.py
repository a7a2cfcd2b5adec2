"""readings_insert: COPY fast path, merge on conflict, counts of new rows."""

import numpy as np
import pytest
from django.db import transaction

from readings.models import Reading
from readings.services import ReadingBatch, readings_insert
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db
T0 = np.datetime64("2026-04-01T00:00:00", "us")


def batch_for(sensor, minutes, value=1.0, quality=1.0):
    minutes = np.asarray(minutes)
    return ReadingBatch.from_columns(
        sensor=np.full(len(minutes), sensor.pk),
        time=T0 + minutes * np.timedelta64(60, "s"),
        value=np.full(len(minutes), value),
        quality=np.full(len(minutes), quality),
    )


def test_new_readings_are_stored_with_their_values():
    sensor = SensorFactory()
    batch = ReadingBatch.from_columns(
        sensor=[sensor.pk, sensor.pk],
        time=[T0, T0 + np.timedelta64(1500, "ms")],
        value=[1.25, -3.5],
        quality=[1.0, 0.4],
    )
    assert readings_insert(batch=batch) == 2
    stored = list(Reading.objects.filter(sensor=sensor).order_by("time").values_list("value", "quality"))
    assert stored == [(1.25, 1.0), (-3.5, 0.4)]
    second = Reading.objects.filter(sensor=sensor).order_by("time")[1]
    assert second.time.microsecond == 500_000 and second.time.second == 1


def test_retried_batch_adds_nothing_and_keeps_the_first_values():
    sensor = SensorFactory()
    assert readings_insert(batch=batch_for(sensor, range(100), value=1.0)) == 100
    assert readings_insert(batch=batch_for(sensor, range(100), value=2.0)) == 0
    assert Reading.objects.filter(sensor=sensor).count() == 100
    assert set(Reading.objects.filter(sensor=sensor).values_list("value", flat=True)) == {1.0}


def test_partly_stored_batch_counts_only_new_rows():
    sensor = SensorFactory()
    readings_insert(batch=batch_for(sensor, range(0, 50)))
    assert readings_insert(batch=batch_for(sensor, range(25, 75))) == 25
    assert Reading.objects.filter(sensor=sensor).count() == 75


def test_conflict_inside_an_outer_transaction_leaves_it_usable():
    sensor = SensorFactory()
    with transaction.atomic():
        readings_insert(batch=batch_for(sensor, [0, 1]))
        assert readings_insert(batch=batch_for(sensor, [1, 2])) == 1
        assert readings_insert(batch=batch_for(sensor, [3])) == 1
    assert Reading.objects.filter(sensor=sensor).count() == 4


def test_empty_batch_is_a_no_op():
    assert readings_insert(batch=ReadingBatch.from_columns(sensor=[], time=[], value=[], quality=[])) == 0

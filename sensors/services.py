"""Writes to the fleet."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from sensors.choices import SensorStatus
from sensors.models import Sensor


def sensor_set_status(*, sensors: QuerySet[Sensor], status: str) -> list[int]:
    """Set the status of ``sensors`` (for example to maintenance); returns the pks of those that changed.

    Sensors already in ``status`` are left alone, so their ``updated_at`` keeps saying when they last changed.
    Two queries whatever the number of sensors.
    """
    if status not in SensorStatus.values:
        raise ValueError(f"status must be one of {', '.join(SensorStatus.values)}, not {status!r}.")
    with transaction.atomic(using=sensors.db):
        changed = list(sensors.exclude(status=status).select_for_update().values_list("pk", flat=True))
        # update() bypasses auto_now, so updated_at is set here.
        Sensor.objects.using(sensors.db).filter(pk__in=changed).update(status=status, updated_at=timezone.now())
    return changed

"""Writes to the fleet."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from sensors.choices import SensorStatus
from sensors.models import Sensor


def sensor_set_status(*, sensors: QuerySet[Sensor], status: str) -> int:
    """Set the status of ``sensors`` (for example to maintenance); returns how many changed.

    One UPDATE whatever the number of sensors. Sensors already in ``status``
    are left alone, so their ``updated_at`` keeps saying when they last changed.
    """
    if status not in SensorStatus.values:
        raise ValueError(f"status must be one of {', '.join(SensorStatus.values)}, not {status!r}.")
    # update() bypasses auto_now, so updated_at is set here.
    return sensors.exclude(status=status).update(status=status, updated_at=timezone.now())

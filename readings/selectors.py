"""Reads of readings: ranges, the latest reading per sensor and the fleet's status (cached)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from readings.models import Reading
from sensors.models import Sensor

LATEST_CACHE_TIMEOUT = 300
# A sensor is stale after missing this many expected readings, offline after that many more.
STALE_AFTER_INTERVALS = 3
OFFLINE_AFTER_INTERVALS = 10


def latest_cache_key(sensor_pk: int) -> str:
    return f"readings:latest:{sensor_pk}"


def readings_in_range(*, sensor: Sensor, start: datetime | None = None, end: datetime | None = None) -> QuerySet:
    """Readings of one sensor with start <= time < end (either bound optional)."""
    readings = Reading.objects.filter(sensor=sensor)
    if start is not None:
        readings = readings.filter(time__gte=start)
    if end is not None:
        readings = readings.filter(time__lt=end)
    return readings


def _latest_from_database(sensor_pks: list[int]) -> dict[int, dict | None]:
    newest = Reading.objects.filter(sensor=OuterRef("pk")).order_by("-time")
    rows = (
        Sensor.objects.filter(pk__in=sensor_pks)
        .annotate(
            last_time=Subquery(newest.values("time")[:1]),
            last_value=Subquery(newest.values("value")[:1]),
            last_quality=Subquery(newest.values("quality")[:1]),
        )
        .values_list("pk", "last_time", "last_value", "last_quality")
    )
    return {
        pk: ({"time": time, "value": value, "quality": quality} if time is not None else None)
        for pk, time, value, quality in rows
    }


def sensor_latest_readings(*, sensor_pks: list[int]) -> dict[int, dict | None]:
    """The newest reading of each sensor ({time, value, quality}, or None if it has none).

    Served from the cache; what is missing is read in one query and cached.
    Ingest deletes the entries of the sensors it wrote to.
    """
    keys = {latest_cache_key(pk): pk for pk in sensor_pks}
    cached = cache.get_many(list(keys))
    found = {keys[key]: value["reading"] for key, value in cached.items()}
    missing = [pk for pk in sensor_pks if pk not in found]
    if missing:
        fresh = _latest_from_database(missing)
        cache.set_many(
            {latest_cache_key(pk): {"reading": reading} for pk, reading in fresh.items()}, timeout=LATEST_CACHE_TIMEOUT
        )
        found.update(fresh)
    return found


@dataclass(frozen=True)
class SensorState:
    sensor: Sensor
    reading: dict | None
    age: timedelta | None
    connectivity: str  # online, stale, offline, no_data
    out_of_range: bool | None


def sensor_state(sensor: Sensor, reading: dict | None, now: datetime) -> SensorState:
    if reading is None:
        return SensorState(sensor, None, None, "no_data", None)
    age = now - reading["time"]
    interval = timedelta(seconds=sensor.sampling_interval)
    if age <= interval * STALE_AFTER_INTERVALS:
        connectivity = "online"
    elif age <= interval * OFFLINE_AFTER_INTERVALS:
        connectivity = "stale"
    else:
        connectivity = "offline"
    value = reading["value"]
    out_of_range = (sensor.normal_min is not None and value < sensor.normal_min) or (
        sensor.normal_max is not None and value > sensor.normal_max
    )
    return SensorState(sensor, reading, age, connectivity, out_of_range)


def fleet_status(*, sensors: QuerySet[Sensor], now: datetime | None = None) -> list[SensorState]:
    """Per sensor: its newest reading, how old it is against the expected interval, and whether it is in range."""
    now = now or timezone.now()
    sensor_list = list(sensors.select_related("asset").order_by("sensor_id"))
    latest = sensor_latest_readings(sensor_pks=[sensor.pk for sensor in sensor_list])
    return [sensor_state(sensor, latest.get(sensor.pk), now) for sensor in sensor_list]

"""Reads of readings: ranges, the latest reading per sensor and the fleet's status (cached)."""

from __future__ import annotations

from datetime import datetime

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


STATUS_FIELDS = {
    "sensor_id": "sensor_id",
    "asset_code": "asset__code",
    "sensor_type": "sensor_type",
    "unit": "unit",
    "status": "status",
}


def sensor_state(sensor: dict, reading: dict | None, now: datetime) -> dict:
    """One sensor's row of the fleet status: its newest reading, that reading's age, connectivity and range."""
    state = {name: sensor[field] for name, field in STATUS_FIELDS.items()}
    if reading is None:
        return {
            **state,
            "time": None,
            "value": None,
            "quality": None,
            "age_seconds": None,
            "connectivity": "no_data",
            "out_of_range": None,
        }
    age = (now - reading["time"]).total_seconds()
    interval = sensor["sampling_interval"]
    if age <= interval * STALE_AFTER_INTERVALS:
        connectivity = "online"
    elif age <= interval * OFFLINE_AFTER_INTERVALS:
        connectivity = "stale"
    else:
        connectivity = "offline"
    value = reading["value"]
    low, high = sensor["normal_min"], sensor["normal_max"]
    out_of_range = (low is not None and value < low) or (high is not None and value > high)
    return {
        **state,
        **reading,
        "age_seconds": round(age, 3),
        "connectivity": connectivity,
        "out_of_range": out_of_range,
    }


def fleet_status(*, sensors: QuerySet[Sensor], now: datetime | None = None) -> list[dict]:
    """Per sensor (by sensor_id): its newest reading, how old it is against the expected interval, and whether
    it is outside the normal range.

    Plain dicts rather than model instances and serializers: this runs for
    every sensor of the fleet on each call and must stay fast at thousands.
    """
    now = now or timezone.now()
    rows = list(
        sensors.order_by("sensor_id").values(
            "pk", *STATUS_FIELDS.values(), "sampling_interval", "normal_min", "normal_max"
        )
    )
    latest = sensor_latest_readings(sensor_pks=[row["pk"] for row in rows])
    return [sensor_state(row, latest.get(row["pk"]), now) for row in rows]

"""Reads of readings: ranges, the latest reading per sensor and the fleet's status (cached), and what the admin
console shows: charts, sparklines, sensors needing attention, keyset pages."""

from __future__ import annotations

import hashlib
import uuid
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import Avg, Count, Max, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from readings.aggregates import BUCKETS, ORIGIN, bucket_floor, readings_buckets_sql
from readings.choices import FaultKind
from readings.models import FaultLabel, Reading
from readings.timescale import HOURLY_VIEW, timescaledb_enabled
from sensors.choices import SensorStatus
from sensors.models import Sensor

LATEST_CACHE_TIMEOUT = 300
# A sensor is stale after missing this many expected readings, offline after that many more.
STALE_AFTER_INTERVALS = 3
OFFLINE_AFTER_INTERVALS = 10


def latest_cache_key(sensor_pk: int) -> str:
    return f"readings:latest:{sensor_pk}"


# Changed whenever cached latest readings are dropped: the cached fleet status bodies (``fleet_status_json``) are
# keyed by it, so one new reading anywhere makes them all be built afresh.
FLEET_GENERATION_KEY = "readings:fleet:generation"


def fleet_generation() -> str:
    """The current fleet generation (see FLEET_GENERATION_KEY): a new one whenever the key is missing (evicted,
    flushed), never the value it had before."""
    generation = cache.get(FLEET_GENERATION_KEY)
    if generation is None:
        cache.add(FLEET_GENERATION_KEY, uuid.uuid4().hex, timeout=None)
        generation = cache.get(FLEET_GENERATION_KEY) or "none"
    return generation


def latest_cache_forget(sensor_pks: Iterable[int]) -> None:
    """Drop the cached newest readings of ``sensor_pks`` (what every write of readings does, on commit), and with
    them every cached fleet status body."""
    cache.delete_many([latest_cache_key(pk) for pk in sensor_pks])
    cache.set(FLEET_GENERATION_KEY, uuid.uuid4().hex, timeout=None)


def readings_shown() -> QuerySet:
    """Every reading from READINGS_MIN_TIME on: what every read path works with.

    Older rows can only be clock faults stored before the bound existed; some (year 1 BC) cannot even be
    loaded into Python. They stay invisible until ``manage.py delete_readings`` removes them (doctor counts them).
    """
    return Reading.objects.filter(time__gte=settings.READINGS_MIN_TIME)


def readings_in_range(*, sensor: Sensor, start: datetime | None = None, end: datetime | None = None) -> QuerySet:
    """Readings of one sensor with start <= time < end (either bound optional; never before READINGS_MIN_TIME)."""
    readings = readings_shown().filter(sensor=sensor)
    if start is not None and start > settings.READINGS_MIN_TIME:
        readings = readings.filter(time__gte=start)
    if end is not None:
        readings = readings.filter(time__lt=end)
    return readings


def _latest_from_database(sensor_pks: list[int]) -> dict[int, dict | None]:
    newest = readings_shown().filter(sensor=OuterRef("pk")).order_by("-time")
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


def sensor_status_row(sensor: Sensor) -> dict:
    """A sensor as ``sensor_state`` reads it (the shape of a ``fleet_status`` row)."""
    return {
        "sensor_id": sensor.sensor_id,
        "asset__code": sensor.asset.code,
        "sensor_type": sensor.sensor_type,
        "unit": sensor.unit,
        "status": sensor.status,
        "sampling_interval": sensor.sampling_interval,
        "normal_min": sensor.normal_min,
        "normal_max": sensor.normal_max,
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
    rows, latest = _fleet_rows(sensors)
    return [sensor_state(row, latest.get(row["pk"]), now) for row in rows]


def _fleet_rows(sensors: QuerySet[Sensor]) -> tuple[list[dict], dict[int, dict | None]]:
    rows = list(
        sensors.order_by("sensor_id").values(
            "pk", *STATUS_FIELDS.values(), "sampling_interval", "normal_min", "normal_max"
        )
    )
    return rows, sensor_latest_readings(sensor_pks=[row["pk"] for row in rows])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def fleet_status_json(*, sensors: QuerySet[Sensor], now: datetime | None = None) -> bytes:
    """``GET /api/v1/fleet/status``'s body ({generated_at, counts, sensors}) as the API's JSON renderer writes it,
    from a cached, pre-serialised copy where one is valid: only the time and the readings' ages are written per
    request, so a warm call costs two small queries and no work per sensor beyond formatting its age.

    The copy is keyed by the query of ``sensors`` (who asks: their sites or key limits), the fleet generation
    (ingest, imports and deletes change it, see ``latest_cache_forget``) and the sensors' count and last change
    (theirs and their assets'); it serves only until the first of its sensors would change connectivity (and at
    most LATEST_CACHE_TIMEOUT seconds). The body is what ``fleet_status`` answers at ``now``, byte for byte.
    """
    from rest_framework.renderers import JSONRenderer

    now = now or timezone.now()
    render = JSONRenderer().render
    try:
        scope = hashlib.sha256(str(sensors.order_by().values("pk").query).encode()).hexdigest()
    except EmptyResultSet:  # sees no sensor at all: nothing worth caching
        scope = None
    key = None
    if scope is not None:
        changed = sensors.order_by().aggregate(n=Count("pk"), sensor=Max("updated_at"), asset=Max("asset__updated_at"))
        stamps = [changed["n"], *(moment and _micros(moment) for moment in (changed["sensor"], changed["asset"]))]
        generation = fleet_generation()
        key = f"readings:fleet-status:{scope}:{generation}:{':'.join(map(str, stamps))}"
        snapshot = cache.get(key)
        if snapshot is not None and _micros(now) <= snapshot["valid_until"]:
            return _fleet_body(snapshot, now, render)
    snapshot = _fleet_snapshot(sensors, now, render)
    if key is not None:
        cache.set(key, snapshot, timeout=LATEST_CACHE_TIMEOUT)
    return _fleet_body(snapshot, now, render)


def _fleet_snapshot(sensors: QuerySet[Sensor], now: datetime, render) -> dict:
    """The fleet status body at ``now``, cut where it changes with time: "parts", pieces of JSON between which go
    the time (after the first) and each reading's age (after the others); "times", each reading's time in
    microseconds since the epoch; "valid_until", the last instant (same unit) at which every connectivity holds."""
    rows, latest = _fleet_rows(sensors)
    states = [sensor_state(row, latest.get(row["pk"]), now) for row in rows]
    counts = Counter(state["connectivity"] for state in states)
    counts["out_of_range"] = sum(1 for state in states if state["out_of_range"])
    counts["total"] = len(states)
    now_us = _micros(now)
    valid_until = now_us + LATEST_CACHE_TIMEOUT * 1_000_000
    marker = f"@age-{uuid.uuid4().hex}@"
    parts, times = ['{"generated_at":'], []
    current = f',"counts":{render(dict(counts)).decode()},"sensors":['
    for index, (row, state) in enumerate(zip(rows, states, strict=True)):
        if index:
            current += ","
        if state["time"] is None:
            current += render(state).decode()
            continue
        before, after = render({**state, "age_seconds": marker}).decode().split(f'"{marker}"')
        parts.append(current + before)
        current = after
        reading_us = _micros(state["time"])
        times.append(reading_us)
        for multiple in (STALE_AFTER_INTERVALS, OFFLINE_AFTER_INTERVALS):
            until = reading_us + row["sampling_interval"] * multiple * 1_000_000
            if until >= now_us:  # connectivity as now until then (see sensor_state: age <= interval * multiple)
                valid_until = min(valid_until, until)
                break
    parts.append(current + "]}")
    return {"parts": parts, "times": times, "valid_until": valid_until}


def _fleet_body(snapshot: dict, now: datetime, render) -> bytes:
    parts, now_us = snapshot["parts"], _micros(now)
    out = [parts[0], render(now).decode(), parts[1]]
    # The age as sensor_state computes it: round((now - time).total_seconds(), 3), in exact integer microseconds.
    for reading_us, part in zip(snapshot["times"], parts[2:], strict=True):
        out.append(repr(round((now_us - reading_us) / 1_000_000, 3)))
        out.append(part)
    return "".join(out).encode()


# --- Admin console ---------------------------------------------------------------------------------------------
# Extension points for the apps to our right: readings cannot import mlops (dependencies point one way), so mlops
# registers its providers here from its AppConfig.ready().
#
# A chart marks provider is called as provider(sensor=<Sensor>, start=<datetime>, end=<datetime>) and returns
# periods to mark on that sensor's chart, each {"series": <legend name>, "label": <hover text>, "start", "end"}.
# An alerts provider is called as provider(limit=<int>) and returns at most that many open alerts, most severe
# first, each {"sensor_id": <external id>, "title": <text>, "opened_at": <datetime>} plus an optional "url".
# For a person limited to some sites (sensors.selectors.user_sites) it is called with sites=<list of site names>
# too, and returns only the alerts of those sites; alert summary providers likewise.
_chart_mark_providers: list[Callable[..., list[dict]]] = []
_chart_mark_batches: dict[Callable[..., list[dict]], Callable[..., dict[int, list[dict]]]] = {}
_alert_providers: list[Callable[..., list[dict]]] = []
_flag_providers: list[Callable[..., list[dict]]] = []
# An alert summary provider is called as provider() and returns {"total", "by_severity", "by_kind", "groups",
# "list_url"}: the dashboard's totals and groups of open alerts (see mlops.selectors.alerts_summary).
_alert_summary_providers: list[Callable[..., dict]] = []
# A sensor events provider is called as provider(sensor=<Sensor>) and returns sections for the sensor page, each
# {"title", "rows": [{"text", "url", "time", "badge": (kind, label) or None}], "total", "more_url"}.
_sensor_event_providers: list[Callable[..., list[dict]]] = []

CHART_MAX_POINTS = 2000
CHART_MAX_MARKS = 1000
SPARKLINE_HOURS = 24
ATTENTION_LIMIT = 50
RECENT_COUNT_CACHE_TIMEOUT = 60
SPARKLINE_CACHE_TIMEOUT = 600
CHART_CACHE_TIMEOUT = 600
# Chart buckets narrower than the API's (BUCKETS starts at a minute), for sensors that read more often.
CHART_BUCKETS = [timedelta(seconds=seconds) for seconds in (1, 2, 5, 10, 15, 30)] + list(BUCKETS.values())
DEFAULT_CHART_INTERVAL = timedelta(minutes=1)

_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_INSTANT = timedelta(microseconds=1)


def fault_labels_list(*, sensors: QuerySet[Sensor]) -> QuerySet[FaultLabel]:
    """Fault labels of ``sensors`` (those the caller may see), with what a list shows of sensor and asset."""
    return FaultLabel.objects.filter(sensor__in=sensors).select_related("sensor", "sensor__asset")


def register_chart_marks(
    provider: Callable[..., list[dict]], *, many: Callable[..., dict[int, list[dict]]] | None = None
) -> Callable[..., list[dict]]:
    """Add a source of chart marks (usable as a decorator; registering twice adds it once). ``many``, if given,
    is called as many(sensors=<list of Sensor>, start=, end=) and returns {sensor pk: marks} for all of them in
    one go (charts of several sensors, as on the asset page)."""
    if provider not in _chart_mark_providers:
        _chart_mark_providers.append(provider)
    if many is not None:
        _chart_mark_batches[provider] = many
    return provider


def register_alerts(provider: Callable[..., list[dict]]) -> Callable[..., list[dict]]:
    """Add a source of open alerts for the dashboard (usable as a decorator; registering twice adds it once)."""
    if provider not in _alert_providers:
        _alert_providers.append(provider)
    return provider


def register_flags(provider: Callable[..., list[dict]]) -> Callable[..., list[dict]]:
    """Add a source of flags for the dashboard: things other apps found wrong (smartmaint: failing or late jobs).
    ``provider(user=...)`` returns [{"title", "problem", "url"}], only what that user may see. Registering twice
    adds it once."""
    if provider not in _flag_providers:
        _flag_providers.append(provider)
    return provider


def register_alert_summary(provider: Callable[..., dict]) -> Callable[..., dict]:
    """Add a source of open-alert totals and groups for the dashboard (registering twice adds it once)."""
    if provider not in _alert_summary_providers:
        _alert_summary_providers.append(provider)
    return provider


def register_sensor_events(provider: Callable[..., list[dict]]) -> Callable[..., list[dict]]:
    """Add a source of sections for the sensor page (mlops: open alerts, recent anomalies); registering twice
    adds it once."""
    if provider not in _sensor_event_providers:
        _sensor_event_providers.append(provider)
    return provider


def _for_sites(sites: list[str] | None) -> dict:
    """The keywords that limit a provider to ``sites``: none for every site (providers that predate site access
    take none)."""
    return {} if sites is None else {"sites": sites}


def alert_summaries(*, sites: list[str] | None = None) -> list[dict]:
    """Every registered source's open-alert summary (of ``sites``; None: all), in registration order."""
    return [provider(**_for_sites(sites)) for provider in _alert_summary_providers]


def sensor_events(*, sensor: Sensor) -> list[dict]:
    """Every registered source's sections for ``sensor``'s page, in registration order."""
    return [section for provider in _sensor_event_providers for section in provider(sensor=sensor)]


def dashboard_flags(*, user) -> list[dict]:
    """Every registered source's flags for ``user``, in registration order."""
    return [flag for provider in _flag_providers for flag in provider(user=user)]


def alerts_enabled() -> bool:
    """Whether any app provides alerts: the dashboard shows its alerts section only then."""
    return bool(_alert_providers)


def sensor_chart_marks(*, sensor: Sensor, start: datetime, end: datetime) -> list[dict]:
    """Periods to mark on ``sensor``'s chart over [start, end): its labelled faults (a series per fault kind), then
    those of the registered providers (anomalies, once mlops registers them). Each {"series", "label", "start",
    "end"} and optionally "key" (what picks the series' colour: the fault kind), at most CHART_MAX_MARKS per
    source."""
    return _chart_marks_many(sensors=[sensor], start=start, end=end)[sensor.pk]


def _chart_marks_many(*, sensors: list[Sensor], start: datetime, end: datetime) -> dict[int, list[dict]]:
    """``sensor_chart_marks`` of each of ``sensors``: their labels in one query, each provider's marks in one call
    where it registered a call for many sensors."""
    labels: dict[int, list] = {sensor.pk: [] for sensor in sensors}
    for label in FaultLabel.objects.filter(sensor__in=list(labels), start__lt=end, end__gte=start).order_by("start"):
        labels[label.sensor_id].append(label)
    # One series per fault kind, in the kinds' order: each gets its own colour, legend entry and lane.
    order = {kind: index for index, kind in enumerate(FaultKind.values)}
    marks = {
        pk: sorted(
            (
                {
                    "series": label.get_kind_display(),
                    "key": label.kind,
                    "label": label.get_kind_display(),
                    "start": label.start,
                    "end": label.end,
                }
                for label in rows[:CHART_MAX_MARKS]
            ),
            key=lambda mark: (order.get(mark["key"], len(order)), mark["start"]),
        )
        for pk, rows in labels.items()
    }
    for provider in _chart_mark_providers:
        many = _chart_mark_batches.get(provider)
        found = many(sensors=sensors, start=start, end=end) if many is not None and len(sensors) > 1 else None
        for sensor in sensors:
            provided = found.get(sensor.pk, []) if found is not None else provider(sensor=sensor, start=start, end=end)
            marks[sensor.pk].extend(provided[:CHART_MAX_MARKS])
    return marks


def chart_bucket(
    span: timedelta, *, interval: timedelta | None = None, max_points: int = CHART_MAX_POINTS
) -> timedelta:
    """The narrowest bucket of CHART_BUCKETS that is no finer than ``interval`` (the sensor's expected sampling
    interval; default a minute) and cuts ``span`` into at most ``max_points`` buckets, else whole days.

    Never finer than the data: a sensor reading every 5 minutes charted in 1-minute buckets would fill one bucket
    in five, and no two neighbours would join into a line.
    """
    interval = interval or DEFAULT_CHART_INTERVAL
    # An unaligned range touches one bucket more than span / width.
    for width in CHART_BUCKETS:
        if width >= interval and span <= width * (max_points - 1):
            return width
    days = max(-(-span // (_DAY * (max_points - 1))), -(-interval // _DAY))
    return _DAY * days


def sensor_interval(sensor: Sensor) -> timedelta:
    """The sensor's expected time between readings."""
    return timedelta(seconds=sensor.sampling_interval or DEFAULT_CHART_INTERVAL.total_seconds())


def sensor_chart(*, sensor: Sensor, start: datetime, end: datetime, max_points: int = CHART_MAX_POINTS) -> dict:
    """What a sensor's chart draws over [start, end): mean, min and max per bucket, and the marks, on one x axis.

    The points come from ``readings_buckets`` (the API's aggregates) with a bucket chosen by ``chart_bucket`` from
    the range and the sensor's sampling interval, so the browser never gets more than ``max_points`` of them
    whatever the range, and never buckets finer than the sensor reads. Empty buckets are kept, as nulls,
    so gaps in the signal show as gaps in the line. x is bucket starts in Unix seconds; each mark series has, per
    bucket, 1 (and its label) where one of its marks overlaps the bucket, else null.
    """
    [chart] = sensor_charts(sensors=[sensor], start=start, end=end, max_points=max_points)
    return chart


def sensor_charts(
    *, sensors: list[Sensor], start: datetime, end: datetime, max_points: int = CHART_MAX_POINTS
) -> list[dict]:
    """``sensor_chart`` of each of ``sensors`` over one range (the asset page's charts), in as many queries as for
    one: every sensor's buckets in one, their fault labels in one, each marks provider's in one where it can."""
    buckets = [chart_bucket(end - start, interval=sensor_interval(sensor), max_points=max_points) for sensor in sensors]
    columns = _chart_buckets_many(
        [(sensor.pk, bucket) for sensor, bucket in zip(sensors, buckets, strict=True)], start=start, end=end
    )
    marks = _chart_marks_many(sensors=sensors, start=start, end=end)
    return [
        _chart(*column, bucket=bucket, marks=marks[sensor.pk])
        for sensor, bucket, column in zip(sensors, buckets, columns, strict=True)
    ]


def _chart(x: list, avg: list, low: list, high: list, *, bucket: timedelta, marks: list[dict]) -> dict:
    width = int(bucket.total_seconds())
    series: dict[str, dict] = {}
    for mark in marks:
        entry = series.setdefault(
            mark["series"],
            {"name": mark["series"], "key": mark.get("key") or "", "values": [None] * len(x), "labels": {}},
        )
        # Buckets [b, b + width) that overlap the mark's [start, end]; a mark of one instant still hits its bucket.
        first = bisect_right(x, mark["start"].timestamp() - width)
        last = bisect_right(x, mark["end"].timestamp())
        for index in range(first, last):
            entry["values"][index] = 1
            entry["labels"].setdefault(index, [])
            if mark["label"] not in entry["labels"][index]:
                entry["labels"][index].append(mark["label"])
    chart_marks = []
    for entry in series.values():
        labels = [None] * len(x)
        for index, names in entry["labels"].items():
            labels[index] = ", ".join(names)
        chart_marks.append({"name": entry["name"], "key": entry["key"], "values": entry["values"], "labels": labels})
    return {
        "bucket_seconds": width,
        "x": x,
        "avg": avg,
        "min": low,
        "max": high,
        "points": sum(1 for value in avg if value is not None),
        "marks": chart_marks,
    }


def _chart_buckets_many(charts: list[tuple[int, timedelta]], *, start: datetime, end: datetime) -> list[tuple]:
    """What ``readings_buckets(..., aggs=("avg", "min", "max"), fill="null")`` returns, as columns, for each
    (sensor pk, bucket) of ``charts``: every bucket's start in Unix seconds, from the one containing ``start`` to
    the one containing the instant before ``end``, and its mean, min and max (None where empty).

    The same SQL, one statement per chart joined by UNION ALL into one query, filled in integer arithmetic: no
    datetime per bucket, which was most of a chart's time (an asset page draws one chart per sensor).
    """
    statements = [
        readings_buckets_sql(sensor_pk=pk, start=start, end=end, bucket=bucket, aggs=("avg", "min", "max"))
        for pk, bucket in charts
    ]
    # The bounds readings_buckets works with (see aggregates._validated).
    start = max(start, settings.READINGS_MIN_TIME)
    end = max(end, start)
    if end <= start or not charts:
        return [([], [], [], []) for _ in charts]
    # Each chart's rows cached under the fleet generation, which every write of readings changes: a chart that
    # ends in the past (a quiet sensor's, a chosen range) is read once until then; one ending now moves on anyway.
    generation = fleet_generation()
    keys = {
        f"readings:chart:{generation}:{pk}:{int(bucket.total_seconds())}:{_micros(start)}:{_micros(end)}": index
        for index, (pk, bucket) in enumerate(charts)
    }
    cached = {keys[key]: rows for key, rows in cache.get_many(list(keys)).items()}
    missing = [index for index in range(len(charts)) if index not in cached]
    rows = [(index, *row) for index, chart_rows in cached.items() for row in chart_rows]
    if missing:
        sql = " UNION ALL ".join(f"SELECT {index}, q.* FROM ({statements[index][1]}) AS q" for index in missing)
        params = [param for index in missing for param in statements[index][2]]
        with connections["default"].cursor() as cursor:
            cursor.execute(sql, params)
            fresh = cursor.fetchall()
        rows.extend(fresh)
        found: dict[int, list] = {index: [] for index in missing}
        for index, *row in fresh:
            found[index].append(tuple(row))
        cache.set_many(
            {key: found[index] for key, index in keys.items() if index in found}, timeout=CHART_CACHE_TIMEOUT
        )
    columns = []
    for _, bucket in charts:
        width = int(bucket.total_seconds())
        first = int(bucket_floor(start, bucket).timestamp())
        last = int(bucket_floor(end - _INSTANT, bucket).timestamp())
        x = list(range(first, last + 1, width))
        columns.append((x, [None] * len(x), [None] * len(x), [None] * len(x), first, width))
    for chart, moment, mean, minimum, maximum in rows:
        _, avg, low, high, first, width = columns[chart]
        index = (moment - first) // width
        avg[index], low[index], high[index] = mean, minimum, maximum
    return [column[:4] for column in columns]


def sparkline_window(reading: dict, now: datetime, hours: int = SPARKLINE_HOURS) -> tuple[datetime, datetime]:
    """The whole hours a sparkline covers: the last ``hours`` up to now, or up to the last reading when that is
    older, so an offline sensor still shows the signal it had before it went quiet."""
    anchor = min(now, reading["time"])
    if now - anchor < hours * _HOUR:
        anchor = now
    end = bucket_floor(anchor, _HOUR) + _HOUR
    return end - hours * _HOUR, end


def sensor_sparklines(
    *, latest: dict[int, dict | None], now: datetime | None = None, hours: int = SPARKLINE_HOURS
) -> dict[int, dict]:
    """Hourly means of each sensor's last ``hours`` hours of signal (see ``sparkline_window``), in one query.

    ``latest`` is what ``sensor_latest_readings`` returned for the sensors on a page; sensors without readings
    are left out. Returns {sensor pk: {"x": [hour starts, Unix seconds], "y": [means]}}, hours without readings
    omitted. Where TimescaleDB serves ``readings_hourly`` it answers; elsewhere the raw rows are grouped by hour.
    """
    now = now or timezone.now()
    windows = {pk: sparkline_window(reading, now, hours) for pk, reading in latest.items() if reading is not None}
    if not windows:
        return {}
    # Cached per sensor under its window and its newest reading's time: a new reading (ingest drops the cached
    # latest reading, so the next read sees its time) or the next hour makes a new key, never a stale line.
    keys = {
        f"readings:spark:{pk}:{int(start.timestamp())}:{int(end.timestamp())}:{latest[pk]['time'].timestamp()}": pk
        for pk, (start, end) in windows.items()
    }
    cached = {keys[key]: line for key, line in cache.get_many(list(keys)).items()}
    missing = {pk: window for pk, window in windows.items() if pk not in cached}
    lines = _sparkline_lines(missing) if missing else {}
    cache.set_many(
        {key: lines.get(pk, {"x": [], "y": []}) for key, pk in keys.items() if pk in missing},
        timeout=SPARKLINE_CACHE_TIMEOUT,
    )
    lines.update(cached)
    return {pk: line for pk, line in lines.items() if line["x"]}


def _sparkline_lines(windows: dict[int, tuple[datetime, datetime]]) -> dict[int, dict]:
    connection = connections[Reading.objects.db]
    if connection.vendor == "postgresql":
        rows = _sparkline_rows_postgresql(connection, windows)
    else:
        match = Q()
        for pk, (start, end) in windows.items():
            match |= Q(sensor_id=pk, time__gte=start, time__lt=end)
        rows = [
            (pk, int(hour.timestamp()), mean)
            for pk, hour, mean in Reading.objects.filter(match)
            .annotate(hour=TruncHour("time", tzinfo=UTC))
            .values("sensor_id", "hour")
            .annotate(mean=Avg("value"))
            .order_by("sensor_id", "hour")
            .values_list("sensor_id", "hour", "mean")
        ]
    lines: dict[int, dict] = {}
    for pk, hour, mean in rows:
        line = lines.setdefault(pk, {"x": [], "y": []})
        line["x"].append(hour)
        line["y"].append(mean)
    return lines


def _sparkline_rows_postgresql(connection, windows: dict[int, tuple[datetime, datetime]]) -> list[tuple]:
    """(pk, hour start in Unix seconds, mean) per sensor and hour of its window, in sensor and time order.

    The windows join the readings LATERALly, so each sensor's hours are read by one range scan of the primary
    key and aggregated apart. OR-ed (sensor, range) conditions instead let the planner pull out the time range
    they share and scan the whole index for it (10M rows: 310 ms against 25 ms on our reference machine).
    """
    quote = connection.ops.quote_name
    if timescaledb_enabled(connection):
        per_sensor = (
            f"SELECT bucket AS hour, avg_value AS mean FROM {quote(HOURLY_VIEW)} "
            "WHERE sensor_id = w.pk AND bucket >= w.start AND bucket < w.stop"
        )
        params = []
    else:
        meta = Reading._meta
        table, sensor = quote(meta.db_table), quote(meta.get_field("sensor").column)
        time, value = quote(meta.get_field("time").column), quote(meta.get_field("value").column)
        per_sensor = (
            f"SELECT date_bin('1 hour'::interval, {time}, %s::timestamptz) AS hour, avg({value}) AS mean "
            f"FROM {table} WHERE {sensor} = w.pk AND {time} >= w.start AND {time} < w.stop GROUP BY 1"
        )
        params = [ORIGIN]
    pks = list(windows)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT w.pk, extract(epoch FROM r.hour)::bigint, r.mean "
            "FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS w(pk, start, stop) "
            f"CROSS JOIN LATERAL ({per_sensor}) AS r ORDER BY 1, 2",
            [pks, [windows[pk][0] for pk in pks], [windows[pk][1] for pk in pks], *params],
        )
        return cursor.fetchall()


def readings_recent_count(
    *, window: timedelta = _DAY, now: datetime | None = None, sites: list[str] | None = None
) -> int:
    """How many readings are stamped within the last ``window``; cached for RECENT_COUNT_CACHE_TIMEOUT seconds.

    Counted per sensor, in a subquery for each: the sensor leads the primary key's index, so every count walks
    one short index range. A plain filter on time leaves the planner a sequential scan of the whole table, which
    has no index on time alone without TimescaleDB (10M rows: 0.4 s against 0.05 s on our reference machine).
    ``sites``: only the sensors of those sites (None: every sensor), cached apart.
    """
    key = f"readings:recent-count:{int(window.total_seconds())}"
    sensors = Sensor.objects.all()
    if sites is not None:
        sensors = sensors.filter(asset__site__in=sites)
        key += ":sites:" + hashlib.sha256("\n".join(sorted(sites)).encode()).hexdigest()[:16]
    count = cache.get(key)
    if count is None:
        since = (now or timezone.now()) - window
        per_sensor = (
            Reading.objects.filter(sensor=OuterRef("pk"), time__gte=since)
            .order_by()
            .values("sensor")
            .annotate(n=Count("*"))
            .values("n")
        )
        total = sensors.annotate(n=Subquery(per_sensor)).aggregate(total=Sum("n"))["total"]
        count = total or 0
        cache.set(key, count, timeout=RECENT_COUNT_CACHE_TIMEOUT)
    return count


ATTENTION_REASONS = {"alert": "open alert", "out_of_range": "out of range", "offline": "offline", "stale": "stale"}
_ATTENTION_RANK = {"alert": 4, "out_of_range": 3, "offline": 2, "stale": 1}


def attention_reasons(state: dict) -> list[str]:
    """Why a sensor of ``fleet_status`` needs attention (keys of ATTENTION_REASONS, alerts aside); none if fine.

    Only active sensors count: one in maintenance, inactive or decommissioned is expected to be quiet.
    """
    if state["status"] != SensorStatus.ACTIVE:
        return []
    reasons = ["out_of_range"] if state["out_of_range"] else []
    if state["connectivity"] in ("offline", "stale"):
        reasons.append(state["connectivity"])
    return reasons


def attention_items(*, states: list[dict], limit: int = ATTENTION_LIMIT, sites: list[str] | None = None) -> dict:
    """The sensors of ``states`` (rows of ``fleet_status``) that need attention, most severe first.

    Severity: an open alert (where an alerts provider is registered), then out of the normal range, offline,
    stale. Returns {"items": the first ``limit``, "total": how many need attention, "sensor_ids": all of them,
    "alerts": the open alerts, or None when no app provides alerts}. Each item is its fleet status row plus
    "pk", "asset_name", "reasons" (keys of ATTENTION_REASONS) and "reason_badges" ((key, label) pairs).
    ``sites``: the alerts of those sites only (None: every site), as ``states`` should be.
    """
    alerts = None
    if _alert_providers:
        alerts = [alert for provider in _alert_providers for alert in provider(limit=limit, **_for_sites(sites))][
            :limit
        ]
    alerted = {alert["sensor_id"] for alert in alerts or ()}
    flagged = []
    for state in states:
        reasons = attention_reasons(state)
        if state["sensor_id"] in alerted and state["status"] == SensorStatus.ACTIVE:
            reasons.insert(0, "alert")
        if reasons:
            flagged.append((reasons, state))
    flagged.sort(key=lambda item: (-_ATTENTION_RANK[item[0][0]], -len(item[0]), item[1]["sensor_id"]))
    shown = flagged[:limit]
    details = {
        sensor_id: (pk, asset_name)
        for sensor_id, pk, asset_name in Sensor.objects.filter(
            sensor_id__in=[state["sensor_id"] for _, state in shown]
        ).values_list("sensor_id", "pk", "asset__name")
    }
    items = []
    for reasons, state in shown:
        pk, asset_name = details.get(state["sensor_id"], (None, ""))
        items.append(
            {
                **state,
                "pk": pk,
                "asset_name": asset_name,
                "reasons": reasons,
                "reason_badges": [(reason, ATTENTION_REASONS[reason]) for reason in reasons],
            }
        )
    return {
        "items": items,
        "total": len(flagged),
        "sensor_ids": [state["sensor_id"] for _, state in flagged],
        "alerts": alerts,
    }


def readings_page(
    *,
    sensor: Sensor,
    start: datetime | None = None,
    end: datetime | None = None,
    before: datetime | None = None,
    after: datetime | None = None,
    size: int = 100,
) -> tuple[list[dict], bool]:
    """One page of a sensor's readings in [start, end), newest first, by keyset on time: never counts.

    ``before`` gives the page of readings older than it (the next page), ``after`` the page newer than it (the
    previous one); neither gives the newest page. Returns (rows of {time, value, quality}, whether more
    readings lie beyond the page in the direction travelled).
    """
    readings = readings_in_range(sensor=sensor, start=start, end=end).values("time", "value", "quality")
    if after is not None:
        rows = list(readings.filter(time__gt=after).order_by("time")[: size + 1])
        return rows[:size][::-1], len(rows) > size
    if before is not None:
        readings = readings.filter(time__lt=before)
    rows = list(readings.order_by("-time")[: size + 1])
    return rows[:size], len(rows) > size


def plant_tree(*, sensors: QuerySet[Sensor], now: datetime | None = None) -> list[dict]:
    """``sensors`` grouped site -> asset -> sensor, each sensor its ``fleet_status`` row plus "pk" and "name".

    [{"site", "attention", "assets": [{"pk", "code", "name", "attention", "sensors": [...]}]}], sites and assets
    in their natural order; "attention" counts the sensors that need it (see ``attention_reasons``). Two queries
    plus the fleet status (latest readings from the cache), whatever the size of the plant.
    """
    sensors = sensors.select_related("asset").order_by("asset__site", "asset__code", "sensor_type", "sensor_id")
    rows = list(sensors.values("pk", "sensor_id", "name", "asset_id", "asset__site", "asset__code", "asset__name"))
    states = {state["sensor_id"]: state for state in fleet_status(sensors=sensors, now=now)}
    sites: dict[str, dict] = {}
    for row in rows:
        state = {**states[row["sensor_id"]], "pk": row["pk"], "name": row["name"]}
        site = sites.setdefault(row["asset__site"], {"site": row["asset__site"], "attention": 0, "assets": {}})
        asset = site["assets"].setdefault(
            row["asset_id"],
            {"pk": row["asset_id"], "code": row["asset__code"], "name": row["asset__name"], "attention": 0},
        )
        asset.setdefault("sensors", []).append(state)
        if attention_reasons(state):
            asset["attention"] += 1
            site["attention"] += 1
    return [{**site, "assets": list(site["assets"].values())} for site in sites.values()]

"""A fixed data set and fixed requests for ``readings_buckets``, run alike on PostgreSQL, SQLite and TimescaleDB.

Also a brute-force Python reference. SQLite runs it in a subprocess: ``manage.py shell -c SHELL_CODE``.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from readings.aggregates import AGGREGATES, BUCKETS, bucket_floor, bucket_strategy, readings_buckets
from readings.models import Reading
from sensors.models import Asset, Sensor

T0 = datetime(2026, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
MAIN, OTHER = "agg-main", "agg-other"
DATA_START, DATA_END = T0 - 6 * H, T0 + 30 * H
# The main sensor is silent here, so some buckets up to 2h wide fall empty.
GAP = (T0 + 6 * H, T0 + 8 * H)
SUB_SECOND_END = T0 + timedelta(hours=9, minutes=7, seconds=30, microseconds=500_000)
# What readings_hourly can answer.
HOURLY = ("avg", "min", "max", "count")

SHELL_CODE = "from tests.readings.aggregate_cases import main; main()"


def _case(name, *, start, end, bucket, aggs=AGGREGATES, fill=None, sensor=MAIN, hourly=False) -> dict:
    """``hourly``: on TimescaleDB this request must be answered from readings_hourly."""
    return {
        "name": name,
        "sensor": sensor,
        "start": start,
        "end": end,
        "bucket": bucket,
        "aggs": tuple(aggs),
        "fill": fill,
        "hourly": hourly,
    }


CASES = [
    _case("hourly_1h", start=T0, end=T0 + 24 * H, bucket="1h", aggs=HOURLY, hourly=True),
    _case("hourly_2h_null", start=T0 - 6 * H, end=T0 + 24 * H, bucket="2h", aggs=HOURLY, fill="null", hourly=True),
    _case("hourly_1d", start=DATA_START, end=DATA_END, bucket="1d", aggs=HOURLY, hourly=True),
    _case(
        "hourly_1h_previous",
        start=T0 + 3 * H,
        end=T0 + 12 * H,
        bucket="1h",
        aggs=("max", "avg", "count"),
        fill="previous",
        hourly=True,
    ),
    _case(
        "hourly_3h_other_sensor",
        start=T0,
        end=T0 + 12 * H,
        bucket="3h",
        aggs=("count", "max"),
        sensor=OTHER,
        hourly=True,
    ),
    _case("raw_15m_all", start=T0 + timedelta(minutes=10), end=SUB_SECOND_END, bucket="15m"),
    _case(
        "raw_1m_previous",
        start=T0 + 5 * H + timedelta(minutes=50),
        end=T0 + 8 * H + timedelta(minutes=10),
        bucket="1m",
        aggs=("first", "last", "count"),
        fill="previous",
    ),
    _case(
        "raw_5m_null_on_hours",
        start=T0 + H,
        end=T0 + 8 * H,
        bucket="5m",
        aggs=("avg", "first", "last", "count"),
        fill="null",
    ),
    _case("raw_30m_not_whole_hours", start=T0, end=T0 + 6 * H, bucket="30m", aggs=HOURLY),
    _case("raw_1d_all", start=DATA_START - 2 * H, end=DATA_END + 2 * H, bucket="1d"),
    _case(
        "raw_1m_around_boundaries",
        start=T0 + 2 * H - timedelta(minutes=2),
        end=T0 + 3 * H + timedelta(minutes=1),
        bucket="1m",
        aggs=("min", "max", "first", "last", "count"),
    ),
    _case("empty_range", start=GAP[0], end=GAP[1], bucket="15m", aggs=HOURLY),
    _case("empty_range_null", start=GAP[0], end=GAP[1], bucket="15m", aggs=("avg", "count", "last"), fill="null"),
]


def dataset() -> dict[str, dict[datetime, float]]:
    """Readings per sensor id: irregular, sub-second times, some exactly on or next to bucket boundaries."""
    rng = random.Random(20260301)  # noqa: S311 - a fixed, reproducible data set
    main: dict[datetime, float] = {}
    moment = DATA_START
    while moment < DATA_END:
        if not GAP[0] <= moment < GAP[1]:
            main[moment] = round(rng.uniform(-40.0, 160.0), 4)
        moment += timedelta(microseconds=rng.randrange(5_000_000, 240_000_000))
    hour = DATA_START
    while hour <= DATA_END:
        if not GAP[0] <= hour < GAP[1]:
            main[hour] = round(rng.uniform(-40.0, 160.0), 4)
        hour += H
    edges = [
        T0 + 2 * H - timedelta(microseconds=1),
        T0 + 2 * H + timedelta(microseconds=1),
        # SQLite's date functions round this to the next millisecond, i.e. the next hour.
        T0 + 3 * H - timedelta(microseconds=400),
        SUB_SECOND_END,
        GAP[0] - timedelta(microseconds=1),
        GAP[1],
    ]
    for moment in edges:
        main[moment] = round(rng.uniform(-40.0, 160.0), 4)
    # Same instants as the main sensor, far outside its values, so a leak shows in every aggregate.
    other = {moment: 10_000.0 + index for index, moment in enumerate(sorted(main)[::7])}
    return {MAIN: dict(sorted(main.items())), OTHER: other}


def seed(*, using: str = "default") -> dict[str, int]:
    """Store ``dataset()`` through the ORM; returns the sensors' primary keys by sensor id."""
    # Not readings_insert: its binary COPY is not served by the PGlite TimescaleDB test server.
    asset, _ = Asset.objects.using(using).get_or_create(
        code="AGG-1", defaults={"name": "Aggregates rig", "site": "Lab"}
    )
    pks = {}
    for sensor_id, readings in dataset().items():
        sensor, _ = Sensor.objects.using(using).get_or_create(
            sensor_id=sensor_id, defaults={"asset": asset, "sensor_type": "temperature", "unit": "°C"}
        )
        pks[sensor_id] = sensor.pk
        Reading.objects.using(using).bulk_create(
            (Reading(sensor=sensor, time=time, value=value) for time, value in readings.items()), batch_size=500
        )
    return pks


def _request(case: dict) -> dict:
    return {
        "start": case["start"],
        "end": case["end"],
        "bucket": BUCKETS[case["bucket"]],
        "aggs": case["aggs"],
    }


def run_cases(*, using: str = "default") -> dict[str, dict]:
    """Every case through ``readings_buckets`` on ``using`` (seeded): {name: {"strategy", "rows"}}, JSON-able."""
    pks = dict(Sensor.objects.using(using).filter(sensor_id__in=[MAIN, OTHER]).values_list("sensor_id", "pk"))
    results = {}
    for case in CASES:
        request = _request(case)
        rows = readings_buckets(sensor_pk=pks[case["sensor"]], fill=case["fill"], using=using, **request)
        results[case["name"]] = {
            "strategy": bucket_strategy(using=using, **request),
            "rows": [_jsonable(row) for row in rows],
        }
    return results


def expected_cases() -> dict[str, list[dict]]:
    """What every case must return, computed in Python from ``dataset()``."""
    data = dataset()
    return {
        case["name"]: [
            _jsonable(row) for row in brute_buckets(data[case["sensor"]], fill=case["fill"], **_request(case))
        ]
        for case in CASES
    }


def brute_buckets(
    readings: dict[datetime, float],
    *,
    start: datetime,
    end: datetime,
    bucket: timedelta,
    aggs: tuple[str, ...],
    fill: str | None = None,
) -> list[dict]:
    """The reference semantics of ``readings_buckets``, one reading at a time."""
    groups: dict[datetime, list[tuple[datetime, float]]] = {}
    for moment, value in sorted(readings.items()):
        if start <= moment < end:
            groups.setdefault(bucket_floor(moment, bucket), []).append((moment, value))

    def summary(members):
        values = [value for _, value in members]
        full = {
            "avg": sum(values) / len(values),
            "min": min(values),
            "max": max(values),
            "count": len(values),
            "first": members[0][1],
            "last": members[-1][1],
        }
        return {agg: full[agg] for agg in aggs}

    if fill is None:
        return [{"bucket": key, **summary(members)} for key, members in sorted(groups.items())]
    rows, carried = [], {agg: 0 if agg == "count" else None for agg in aggs}
    key, last = bucket_floor(start, bucket), bucket_floor(end - timedelta(microseconds=1), bucket)
    while key <= last:
        if key in groups:
            row = summary(groups[key])
            if fill == "previous":
                carried = {**row, **({"count": 0} if "count" in aggs else {})}
        else:
            row = {agg: 0 if agg == "count" else None for agg in aggs} if fill == "null" else dict(carried)
        rows.append({"bucket": key, **row})
        key += bucket
    return rows


def _jsonable(row: dict) -> dict:
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in row.items()}


def assert_same_rows(got: list[dict], expected: list[dict]) -> None:
    """Equal rows: exact, except avg within floating-point rounding."""
    assert [row["bucket"] for row in got] == [row["bucket"] for row in expected]
    for got_row, expected_row in zip(got, expected, strict=True):
        assert list(got_row) == list(expected_row), got_row["bucket"]
        for key, value in expected_row.items():
            if key == "avg" and value is not None:
                assert got_row[key] == pytest.approx(value, rel=1e-9), (got_row["bucket"], key)
            else:
                assert got_row[key] == value, (got_row["bucket"], key)
                assert type(got_row[key]) is type(value), (got_row["bucket"], key)


def assert_same_results(got: dict[str, dict], expected: dict[str, list[dict]]) -> None:
    assert list(got) == list(expected)
    for name, rows in expected.items():
        try:
            assert_same_rows(got[name]["rows"], rows)
        except AssertionError as exc:
            raise AssertionError(f"case {name}: {exc}") from exc


def main() -> None:
    seed()
    print(json.dumps(run_cases()))

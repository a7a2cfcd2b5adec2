"""readings_buckets on PostgreSQL (date_bin) against a brute-force reference, and SQLite against PostgreSQL."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from readings.aggregates import (
    AGGREGATES,
    BUCKETS,
    TooManyBuckets,
    bucket_strategy,
    readings_buckets,
    readings_buckets_sql,
)
from readings.models import Reading
from tests.conftest import run_manage
from tests.factories import SensorFactory
from tests.readings.aggregate_cases import (
    DATA_END,
    DATA_START,
    MAIN,
    OTHER,
    SHELL_CODE,
    assert_same_results,
    assert_same_rows,
    brute_buckets,
    dataset,
    expected_cases,
    run_cases,
    seed,
)

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
US = timedelta(microseconds=1)


@pytest.fixture
def seeded():
    return seed()


def store(sensor, readings: dict[datetime, float]) -> None:
    Reading.objects.bulk_create(Reading(sensor=sensor, time=time, value=value) for time, value in readings.items())


def jsonable(rows):
    return [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()} for row in rows]


@pytest.mark.parametrize("agg", AGGREGATES)
@pytest.mark.parametrize("bucket", ["1m", "15m", "1h", "1d"])
def test_each_aggregate_matches_a_brute_force_computation(seeded, agg, bucket):
    # Unaligned, sub-second bounds, and a reading exactly at `end`.
    start = DATA_START + timedelta(minutes=7, seconds=3, microseconds=250_000)
    end = sorted(dataset()[MAIN])[-40]
    request = {"start": start, "end": end, "bucket": BUCKETS[bucket], "aggs": (agg,)}
    rows = readings_buckets(sensor_pk=seeded[MAIN], **request)
    expected = brute_buckets(dataset()[MAIN], **request)
    assert len(expected) > 1
    assert_same_rows(jsonable(rows), jsonable(expected))


@pytest.mark.parametrize("fill", [None, "null", "previous"])
def test_every_fill_matches_a_brute_force_computation(seeded, fill):
    request = {"start": DATA_START, "end": DATA_END, "bucket": BUCKETS["15m"], "aggs": AGGREGATES}
    rows = readings_buckets(sensor_pk=seeded[MAIN], fill=fill, **request)
    assert_same_rows(jsonable(rows), jsonable(brute_buckets(dataset()[MAIN], fill=fill, **request)))


def test_all_shared_cases_match_the_reference_on_postgresql_via_date_bin(seeded):
    results = run_cases()
    assert {result["strategy"] for result in results.values()} == {"date_bin"}
    assert_same_results(results, expected_cases())


def test_sqlite_gives_the_same_numbers_as_postgresql(seeded, tmp_path):
    env = {"DJANGO_VAR_DIR": str(tmp_path)}
    migrated = run_manage("migrate", "--no-input", env=env)
    assert migrated.returncode == 0, migrated.stderr
    result = run_manage("shell", "-v", "0", "-c", SHELL_CODE, env=env)
    assert result.returncode == 0, result.stderr
    on_sqlite = json.loads(result.stdout.strip().splitlines()[-1])
    assert {case["strategy"] for case in on_sqlite.values()} == {"portable"}

    on_postgresql = run_cases()
    assert_same_results(on_sqlite, {name: case["rows"] for name, case in on_postgresql.items()})
    assert_same_results(on_sqlite, expected_cases())


def test_rows_are_aware_utc_bucket_starts_in_time_order_with_int_counts():
    sensor = SensorFactory()
    store(sensor, {T0 + 3 * MIN: 1.0, T0: 2.0, T0 + 61 * MIN: 3.0})
    rows = readings_buckets(sensor_pk=sensor.pk, start=T0, end=T0 + 2 * timedelta(hours=1), bucket=BUCKETS["1h"],
                            aggs=["count", "avg"])  # fmt: skip
    assert rows == [
        {"bucket": T0, "count": 2, "avg": 1.5},
        {"bucket": T0 + timedelta(hours=1), "count": 1, "avg": 3.0},
    ]
    assert all(row["bucket"].tzinfo == UTC and type(row["count"]) is int for row in rows)
    assert list(rows[0]) == ["bucket", "count", "avg"]


def test_boundaries_belong_to_the_bucket_they_start_and_sub_seconds_are_exact():
    sensor = SensorFactory()
    boundary = T0 + 15 * MIN
    store(
        sensor,
        {
            boundary - US: 1.0,
            boundary - timedelta(microseconds=400): 2.0,
            boundary: 3.0,
            boundary + US: 4.0,
        },
    )
    rows = readings_buckets(sensor_pk=sensor.pk, start=T0, end=T0 + timedelta(hours=1), bucket=BUCKETS["15m"],
                            aggs=["count", "first", "last"])  # fmt: skip
    assert rows == [
        {"bucket": T0, "count": 2, "first": 2.0, "last": 1.0},
        {"bucket": boundary, "count": 2, "first": 3.0, "last": 4.0},
    ]


def test_start_is_included_end_is_excluded_and_other_sensors_do_not_leak():
    sensor, other = SensorFactory(), SensorFactory()
    end = T0 + 10 * MIN
    store(sensor, {T0 - US: -1.0, T0: 1.0, T0 + 5 * MIN: 2.0, end - US: 3.0, end: 100.0})
    store(other, {T0: -50.0, T0 + 5 * MIN: 500.0})
    [row] = readings_buckets(sensor_pk=sensor.pk, start=T0, end=end, bucket=BUCKETS["1h"], aggs=AGGREGATES)
    assert row == {"bucket": T0, "avg": 2.0, "min": 1.0, "max": 3.0, "count": 3, "first": 1.0, "last": 3.0}


def test_fill_null_lists_every_bucket_from_start_to_the_instant_before_end():
    sensor = SensorFactory()
    store(sensor, {T0 + 12 * MIN: 5.0})
    start, end = T0 + 3 * MIN, T0 + 30 * MIN  # `end` starts a bucket that must not appear
    rows = readings_buckets(
        sensor_pk=sensor.pk, start=start, end=end, bucket=BUCKETS["10m"], aggs=["avg", "count", "last"], fill="null"
    )
    assert rows == [
        {"bucket": T0, "avg": None, "count": 0, "last": None},
        {"bucket": T0 + 10 * MIN, "avg": 5.0, "count": 1, "last": 5.0},
        {"bucket": T0 + 20 * MIN, "avg": None, "count": 0, "last": None},
    ]


def test_fill_previous_carries_the_last_values_with_count_zero():
    sensor = SensorFactory()
    store(sensor, {T0 + 10 * MIN: 5.0, T0 + 11 * MIN: 7.0, T0 + 30 * MIN: 1.0})
    rows = readings_buckets(
        sensor_pk=sensor.pk, start=T0, end=T0 + 50 * MIN, bucket=BUCKETS["10m"], aggs=["max", "count"], fill="previous"
    )
    assert rows == [
        {"bucket": T0, "max": None, "count": 0},
        {"bucket": T0 + 10 * MIN, "max": 7.0, "count": 2},
        {"bucket": T0 + 20 * MIN, "max": 7.0, "count": 0},
        {"bucket": T0 + 30 * MIN, "max": 1.0, "count": 1},
        {"bucket": T0 + 40 * MIN, "max": 1.0, "count": 0},
    ]


def test_too_many_buckets_is_refused_before_any_query_and_names_a_wider_bucket(django_assert_num_queries):
    start, end = T0, T0 + timedelta(days=30)
    with django_assert_num_queries(0), pytest.raises(TooManyBuckets) as raised:
        readings_buckets(sensor_pk=1, start=start, end=end, bucket=BUCKETS["1m"], aggs=["avg"])
    assert "43,200 buckets of 1m" in str(raised.value)
    assert "10,000" in str(raised.value)
    assert "bucket=5m" in str(raised.value)
    assert isinstance(raised.value, ValueError)
    with django_assert_num_queries(0), pytest.raises(TooManyBuckets, match="shorten the range"):
        readings_buckets(sensor_pk=1, start=start, end=end, bucket=BUCKETS["1h"], aggs=["avg"], max_buckets=10)


def test_exactly_max_buckets_is_allowed():
    sensor = SensorFactory()
    assert readings_buckets(sensor_pk=sensor.pk, start=T0, end=T0 + 10 * MIN, bucket=MIN, aggs=["count"],
                            max_buckets=10) == []  # fmt: skip


def test_empty_range_gives_no_rows_or_only_empty_buckets():
    sensor = SensorFactory()
    store(sensor, {T0 - MIN: 1.0, T0 + timedelta(hours=1): 2.0})
    request = {"sensor_pk": sensor.pk, "start": T0, "end": T0 + timedelta(hours=1), "bucket": BUCKETS["30m"]}
    assert readings_buckets(aggs=AGGREGATES, **request) == []
    assert readings_buckets(aggs=["min", "count"], fill="null", **request) == [
        {"bucket": T0, "min": None, "count": 0},
        {"bucket": T0 + 30 * MIN, "min": None, "count": 0},
    ]
    assert readings_buckets(aggs=["min"], fill="previous", **request) == [
        {"bucket": T0, "min": None},
        {"bucket": T0 + 30 * MIN, "min": None},
    ]
    assert readings_buckets(**{**request, "end": T0}, aggs=["count"], fill="null") == []


@pytest.mark.parametrize(
    "change",
    [
        {"start": datetime(2026, 6, 1)},
        {"aggs": ["median"]},
        {"aggs": []},
        {"fill": "zero"},
        {"bucket": timedelta(0)},
        {"bucket": timedelta(milliseconds=1500)},
    ],
)
def test_invalid_requests_are_refused(change):
    request = {"sensor_pk": 1, "start": T0, "end": T0 + MIN, "bucket": MIN, "aggs": ["avg"], **change}
    with pytest.raises(ValueError):
        readings_buckets(**request)


def test_plain_postgresql_bins_the_raw_table_with_date_bin():
    request = {"start": T0, "end": T0 + timedelta(days=1), "bucket": BUCKETS["1h"], "aggs": ["avg", "count"]}
    assert bucket_strategy(**request) == "date_bin"
    strategy, sql, params = readings_buckets_sql(sensor_pk=7, **request)
    assert strategy == "date_bin"
    assert "date_bin(" in sql and '"readings_reading"' in sql
    assert params == [timedelta(hours=1), datetime(2000, 1, 1, tzinfo=UTC), 7, T0, T0 + timedelta(days=1)]


def test_other_sensor_of_the_shared_data_set_is_answered_on_its_own(seeded):
    request = {"start": DATA_START, "end": DATA_END, "bucket": BUCKETS["6h"], "aggs": ("count", "min", "max")}
    rows = readings_buckets(sensor_pk=seeded[OTHER], **request)
    assert rows and all(row["min"] >= 10_000 for row in rows)
    assert_same_rows(jsonable(rows), jsonable(brute_buckets(dataset()[OTHER], **request)))

"""readings_buckets on TimescaleDB: the shared cases give the reference numbers, from readings_hourly where it can."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from readings import timescale
from readings.aggregates import BUCKETS, bucket_strategy, readings_buckets
from tests.readings.aggregate_cases import CASES, T0, assert_same_results, expected_cases, run_cases, seed

pytestmark = [pytest.mark.timescale, pytest.mark.django_db]
H = BUCKETS["1h"]


def assert_strategies(results) -> None:
    for case in CASES:
        expected = "hourly_view" if case["hourly"] else "time_bucket"
        assert results[case["name"]]["strategy"] == expected, case["name"]


def test_shared_cases_match_the_reference_and_whole_hours_come_from_readings_hourly():
    seed()
    with CaptureQueriesContext(connection) as queries:
        results = run_cases()
    assert_strategies(results)
    assert_same_results(results, expected_cases())
    # One query per case; the SQL itself shows which source answered.
    sources = [("readings_hourly" in q["sql"], "time_bucket(" in q["sql"]) for q in queries if "_bucket(" in q["sql"]]
    assert sources == [(case["hourly"], True) for case in CASES]


@pytest.mark.parametrize(
    ("change", "strategy"),
    [
        ({}, "hourly_view"),
        ({"bucket": BUCKETS["1d"]}, "hourly_view"),
        ({"aggs": ["avg", "first"]}, "time_bucket"),
        ({"bucket": BUCKETS["30m"]}, "time_bucket"),
        ({"start": T0 + BUCKETS["1m"]}, "time_bucket"),
        ({"end": T0 + 5 * H + BUCKETS["1m"]}, "time_bucket"),
    ],
)
def test_readings_hourly_only_for_whole_hours_and_its_aggregates(change, strategy):
    request = {"start": T0, "end": T0 + 5 * H, "bucket": H, "aggs": ["avg", "min", "max", "count"], **change}
    assert bucket_strategy(**request) == strategy


@pytest.fixture
def materialised_half(transactional_db):
    """Seeded readings with readings_hourly materialised for the first half only; the view is rebuilt afterwards."""
    seed()
    try:
        # Refreshing cannot run inside a transaction block: hence transactional_db.
        with connection.cursor() as cursor:
            cursor.execute("CALL refresh_continuous_aggregate('readings_hourly', NULL, %s::timestamptz)", [T0 + 8 * H])
        yield
    finally:
        # Materialised rows outlive the table flush; a fresh view keeps later tests on real-time data.
        timescale.drop_hourly_aggregate(connection)
        timescale.create_hourly_aggregate(connection)
        timescale.apply_policies(connection)


def test_shared_cases_match_the_reference_when_readings_hourly_is_partly_materialised(materialised_half):
    [(table,)] = _fetch(
        "SELECT materialization_hypertable_schema || '.' || materialization_hypertable_name "
        "FROM timescaledb_information.continuous_aggregates WHERE view_name = 'readings_hourly'"
    )
    [(materialised,)] = _fetch(f"SELECT count(*) FROM {table}")
    assert materialised > 0
    results = run_cases()
    assert_strategies(results)
    assert_same_results(results, expected_cases())


def test_empty_hours_of_readings_hourly_are_filled_like_elsewhere():
    pks = seed()
    rows = readings_buckets(
        sensor_pk=pks["agg-main"], start=T0 + 5 * H, end=T0 + 9 * H, bucket=H, aggs=["count", "max"], fill="null"
    )
    assert [row["count"] == 0 for row in rows] == [False, True, True, False]
    assert rows[1] == {"bucket": T0 + 6 * H, "count": 0, "max": None}


def _fetch(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()

"""TimescaleDB objects created by `migrate`, checked on a real TimescaleDB (PGlite build)."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from readings.models import Reading
from tests.factories import SensorFactory

pytestmark = [pytest.mark.timescale, pytest.mark.django_db]
T0 = datetime(2026, 2, 1, tzinfo=UTC)


def fetch(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def jobs() -> set[str]:
    return {
        proc
        for (proc,) in fetch(
            "SELECT proc_name FROM timescaledb_information.jobs WHERE hypertable_name IN "
            "('readings_reading', 'readings_hourly') OR proc_name LIKE 'policy_refresh%%'"
        )
    }


def test_readings_table_is_a_hypertable_with_the_configured_chunk_interval(settings):
    assert fetch(
        "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE hypertable_name = 'readings_reading'"
    ) == [("readings_reading",)]
    [(interval,)] = fetch(
        "SELECT time_interval FROM timescaledb_information.dimensions "
        "WHERE hypertable_name = 'readings_reading' AND column_name = 'time'"
    )
    assert settings.READINGS_CHUNK_INTERVAL == "1 day"
    assert interval == timedelta(days=1)


def test_primary_key_on_sensor_and_time_survives_the_conversion():
    [(definition,)] = fetch("SELECT indexdef FROM pg_indexes WHERE indexname = 'readings_reading_pkey'")
    assert '(sensor_id, "time")' in definition


def test_duplicate_sensor_and_time_is_refused_on_the_hypertable():
    sensor = SensorFactory()
    Reading.objects.create(sensor=sensor, time=T0, value=1.0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Reading.objects.create(sensor=sensor, time=T0, value=2.0)


def test_compression_and_refresh_jobs_exist_and_retention_follows_settings(settings):
    assert {"policy_compression", "policy_refresh_continuous_aggregate"} <= jobs()
    assert "policy_retention" not in jobs()
    [(segmentby, orderby)] = fetch(
        "SELECT segmentby, orderby FROM timescaledb_information.hypertable_columnstore_settings "
        "WHERE hypertable = 'readings_reading'::regclass"
    )
    assert segmentby == "sensor_id" and orderby.replace('"', "").startswith("time DESC")

    settings.READINGS_RETENTION_DAYS = 400
    call_command("migrate", "--no-input", verbosity=0)
    assert "policy_retention" in jobs()
    [(config,)] = fetch("SELECT config::text FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'")
    assert "400 days" in config

    settings.READINGS_RETENTION_DAYS = None
    call_command("migrate", "--no-input", verbosity=0)
    assert "policy_retention" not in jobs()


def _readings_fixture():
    a, b = SensorFactory(), SensorFactory()
    rows = []
    for i in range(300):  # five hours at one reading a minute, uneven values
        t = T0 + timedelta(minutes=i)
        rows.append(Reading(sensor=a, time=t, value=(i * 7919) % 113 / 3.0))
        if i % 3 == 0:
            rows.append(Reading(sensor=b, time=t + timedelta(seconds=17), value=-((i * 104729) % 97) * 0.5))
    Reading.objects.bulk_create(rows)
    return a, b


HOURLY_FROM_VIEW = (
    "SELECT bucket, sensor_id, avg_value, min_value, max_value, reading_count FROM readings_hourly "
    "ORDER BY sensor_id, bucket"
)
HOURLY_FROM_TABLE = (
    "SELECT date_trunc('hour', time) AS bucket, sensor_id, avg(value), min(value), max(value), count(*) "
    "FROM readings_reading GROUP BY 1, 2 ORDER BY sensor_id, bucket"
)


def _assert_same_rows(view_rows, table_rows):
    assert len(view_rows) == len(table_rows) > 0
    for got, expected in zip(view_rows, table_rows, strict=True):
        assert got[:2] == expected[:2]
        assert got[2] == pytest.approx(expected[2], rel=1e-12)
        assert got[3:] == expected[3:]


def test_readings_hourly_matches_a_plain_group_by_in_real_time():
    _readings_fixture()
    _assert_same_rows(fetch(HOURLY_FROM_VIEW), fetch(HOURLY_FROM_TABLE))


@pytest.mark.django_db(transaction=True)
def test_readings_hourly_matches_a_plain_group_by_once_materialised():
    _readings_fixture()
    # Refreshing cannot run inside a transaction block: this test runs in autocommit.
    with connection.cursor() as cursor:
        cursor.execute("CALL refresh_continuous_aggregate('readings_hourly', NULL, NULL)")
    [(table,)] = fetch(
        "SELECT materialization_hypertable_schema || '.' || materialization_hypertable_name "
        "FROM timescaledb_information.continuous_aggregates WHERE view_name = 'readings_hourly'"
    )
    [(materialized,)] = fetch(f"SELECT count(*) FROM {table}")
    assert materialized > 0
    _assert_same_rows(fetch(HOURLY_FROM_VIEW), fetch(HOURLY_FROM_TABLE))


@pytest.mark.django_db(transaction=True)
def test_compressed_chunks_still_answer_and_refuse_duplicates():
    sensor = SensorFactory()
    old = datetime.now(UTC) - timedelta(days=30)
    Reading.objects.bulk_create([Reading(sensor=sensor, time=old + timedelta(minutes=i), value=i) for i in range(60)])
    compressed = fetch(
        "SELECT compress_chunk(c) FROM show_chunks('readings_reading', older_than => INTERVAL '7 days') c"
    )
    assert compressed
    assert Reading.objects.filter(sensor=sensor).count() == 60
    with pytest.raises(IntegrityError), transaction.atomic():
        Reading.objects.create(sensor=sensor, time=old, value=-1.0)


def test_second_migrate_changes_nothing_and_reports_no_fallback():
    out = StringIO()
    call_command("migrate", "--no-input", stdout=out)
    assert "No migrations to apply." in out.getvalue()
    assert "TimescaleDB not in use" not in out.getvalue()

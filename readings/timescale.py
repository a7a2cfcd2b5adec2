"""TimescaleDB objects around the readings hypertable: compression, retention, ``readings_hourly``.

Called from migrations and after every ``migrate``; each function is a no-op
where TimescaleDB is not in use (plain PostgreSQL, SQLite), so the same
migrations run on all three backends.
"""

from __future__ import annotations

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper

READINGS_TABLE = "readings_reading"
HOURLY_VIEW = "readings_hourly"
# How far back the hourly aggregate is re-materialised on each run; older
# buckets change only when late data arrives that far back.
HOURLY_REFRESH_START = "3 days"
HOURLY_REFRESH_END = "1 hour"
HOURLY_REFRESH_EVERY = "30 minutes"


def timescaledb_enabled(connection: BaseDatabaseWrapper) -> bool:
    return connection.vendor == "postgresql" and getattr(connection, "timescaledb_enabled", False)


def enable_compression(connection: BaseDatabaseWrapper) -> None:
    """Compress chunks segmented by sensor, newest first: the shape of every per-sensor query."""
    if not timescaledb_enabled(connection):
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {READINGS_TABLE} SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'sensor_id', timescaledb.compress_orderby = 'time DESC')"
        )


def create_hourly_aggregate(connection: BaseDatabaseWrapper) -> None:
    """Create the continuous aggregate ``readings_hourly``.

    Real-time (``materialized_only = false``): buckets not yet materialised are
    computed from the raw rows, so the view always agrees with the table.
    """
    if not timescaledb_enabled(connection):
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {HOURLY_VIEW} "
            "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
            "SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, sensor_id, "
            "avg(value) AS avg_value, min(value) AS min_value, max(value) AS max_value, count(*) AS reading_count "
            f"FROM {READINGS_TABLE} GROUP BY bucket, sensor_id WITH NO DATA"
        )


def drop_hourly_aggregate(connection: BaseDatabaseWrapper) -> None:
    if not timescaledb_enabled(connection):
        return
    with connection.cursor() as cursor:
        cursor.execute(f"DROP MATERIALIZED VIEW IF EXISTS {HOURLY_VIEW}")


def apply_policies(connection: BaseDatabaseWrapper) -> None:
    """Make the background jobs match the settings; safe to run any number of times.

    Policies are replaced rather than kept, so a changed ``READINGS_COMPRESS_AFTER``
    or ``READINGS_RETENTION_DAYS`` takes effect on the next ``migrate``.
    """
    if not timescaledb_enabled(connection):
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s", [READINGS_TABLE])
        if cursor.fetchone() is None:
            return  # Migrations not applied yet.
        cursor.execute("SELECT remove_compression_policy(%s, if_exists => true)", [READINGS_TABLE])
        cursor.execute(
            "SELECT add_compression_policy(%s, compress_after => %s::interval)",
            [READINGS_TABLE, settings.READINGS_COMPRESS_AFTER],
        )
        cursor.execute("SELECT remove_retention_policy(%s, if_exists => true)", [READINGS_TABLE])
        if settings.READINGS_RETENTION_DAYS:
            cursor.execute(
                "SELECT add_retention_policy(%s, drop_after => make_interval(days => %s))",
                [READINGS_TABLE, settings.READINGS_RETENTION_DAYS],
            )
        cursor.execute(
            "SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_name = %s", [HOURLY_VIEW]
        )
        if cursor.fetchone() is not None:
            cursor.execute(
                "SELECT add_continuous_aggregate_policy(%s, start_offset => %s::interval, "
                "end_offset => %s::interval, schedule_interval => %s::interval, if_not_exists => true)",
                [HOURLY_VIEW, HOURLY_REFRESH_START, HOURLY_REFRESH_END, HOURLY_REFRESH_EVERY],
            )

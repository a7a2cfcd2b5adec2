"""Writes to the readings table."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from django.db import IntegrityError, connections, transaction

from readings.models import Reading

READINGS_TABLE = Reading._meta.db_table
STAGE_TABLE = "readings_stage"
_COLUMNS = "sensor_id, time, value, quality"
# PostgreSQL's binary COPY counts microseconds from 2000-01-01 UTC.
_PG_EPOCH_US = np.datetime64("2000-01-01T00:00:00", "us").astype(np.int64)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
# One binary COPY tuple: field count, then (length, value) for
# sensor_id int8, time timestamptz, value float8, quality float8.
_COPY_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("sensor_len", ">i4"),
        ("sensor", ">i8"),
        ("time_len", ">i4"),
        ("time", ">i8"),
        ("value_len", ">i4"),
        ("value", ">f8"),
        ("quality_len", ">i4"),
        ("quality", ">f8"),
    ]
)


@dataclass(frozen=True)
class ReadingBatch:
    """Readings as columns: sensor primary keys, UTC times, values, qualities (equal lengths)."""

    sensor: np.ndarray  # int64 Sensor.pk
    time: np.ndarray  # datetime64[us], UTC
    value: np.ndarray  # float64
    quality: np.ndarray  # float64 in [0, 1]

    def __len__(self) -> int:
        return len(self.sensor)

    @classmethod
    def from_columns(cls, *, sensor, time, value, quality) -> ReadingBatch:
        return cls(
            sensor=np.asarray(sensor, dtype=np.int64),
            time=np.asarray(time, dtype="datetime64[us]"),
            value=np.asarray(value, dtype=np.float64),
            quality=np.asarray(quality, dtype=np.float64),
        )


def _binary_copy_payload(batch: ReadingBatch) -> bytes:
    # Encoding the rows with numpy is several times faster than psycopg's
    # row-by-row write_row() for the millions of rows seed_data and ingest
    # move; the format is PostgreSQL's documented binary COPY layout.
    rows = np.empty(len(batch), dtype=_COPY_ROW)
    rows["fields"] = 4
    rows["sensor_len"] = rows["time_len"] = rows["value_len"] = rows["quality_len"] = 8
    rows["sensor"] = batch.sensor
    rows["time"] = batch.time.astype(np.int64) - _PG_EPOCH_US
    rows["value"] = batch.value
    rows["quality"] = batch.quality
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def readings_insert(*, batch: ReadingBatch, using: str = "default") -> int:
    """Store ``batch``, skipping readings whose (sensor, time) is already stored; return how many were new.

    Duplicates are resolved by the primary key, never by reading the table
    first, so a retried batch adds nothing. On PostgreSQL the batch is first
    COPYed straight into the table (the fast path for new data); if the key
    refuses a row, that attempt is rolled back to its savepoint and the batch
    goes through a staging table and ``INSERT ... ON CONFLICT DO NOTHING``.
    Other backends insert row by row in one transaction.
    """
    if not len(batch):
        return 0
    connection = connections[using]
    if connection.vendor != "postgresql":
        return _insert_portable(batch, using)
    payload = _binary_copy_payload(batch)
    with transaction.atomic(using=using):
        try:
            # wrap_database_errors: psycopg's COPY errors arrive as Django's IntegrityError.
            with transaction.atomic(using=using), connection.cursor() as cursor, connection.wrap_database_errors:
                with cursor.copy(f"COPY {READINGS_TABLE} ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(payload)
                return len(batch)
        except IntegrityError:
            pass  # Some rows are already stored: merge instead.
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} "
                "(sensor_id bigint, time timestamptz, value double precision, quality double precision) "
                "ON COMMIT DELETE ROWS"
            )
            with cursor.copy(f"COPY {STAGE_TABLE} ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(payload)
            cursor.execute(
                f"INSERT INTO {READINGS_TABLE} ({_COLUMNS}) SELECT {_COLUMNS} FROM {STAGE_TABLE} "
                "ON CONFLICT DO NOTHING"
            )
            inserted = cursor.rowcount
            # ON COMMIT DELETE ROWS empties it at commit; truncate now for callers inside a longer transaction.
            cursor.execute(f"TRUNCATE {STAGE_TABLE}")
            return inserted


def _insert_portable(batch: ReadingBatch, using: str) -> int:
    """Row-by-row ``INSERT ... ON CONFLICT DO NOTHING`` for SQLite; its rowcount counts the new rows."""
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    # datetime64[us] -> naive UTC datetimes, stored in Django's own text format
    # so equal instants compare equal in the key.
    times = batch.time.astype(object)
    rows = [
        (int(sensor), adapt(time), float(value), float(quality))
        for sensor, time, value, quality in zip(batch.sensor, times, batch.value, batch.quality, strict=True)
    ]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {READINGS_TABLE} (sensor_id, time, value, quality) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            rows,
        )
        return cursor.rowcount

"""Writes to the readings table."""

from __future__ import annotations

import logging
import math
import re
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, NotSupportedError, connections, models, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from readings.choices import FaultKind, FaultSource
from readings.holdout import lay_shape, noise_sigma, quantize, replay, resolution
from readings.imports import (
    LONG_SENSOR_COLUMNS,
    TIME_COLUMNS,
    ChunkReader,
    CsvSource,
    ImportRefused,
    Layout,
    Problem,
    TimeParser,
    find_column,
    microseconds_to_datetime,
    read_header,
)
from readings.models import FaultLabel, Reading
from readings.selectors import latest_cache_forget, readings_shown
from readings.synthetic import PROFILES, SensorSignal, SignalParams, readings_per_sensor, sensor_spec
from sensors.choices import SensorType
from sensors.models import APIKey, Asset, Sensor, external_id_validator

logger = logging.getLogger(__name__)

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

    def sorted(self) -> ReadingBatch:
        """The same readings in (sensor, time) order."""
        order = np.lexsort((self.time, self.sensor))
        if (order[1:] > order[:-1]).all():
            return self
        return ReadingBatch(self.sensor[order], self.time[order], self.value[order], self.quality[order])

    def split(self, size: int) -> tuple[ReadingBatch, ReadingBatch]:
        """The first ``size`` readings and the rest."""
        head = ReadingBatch(self.sensor[:size], self.time[:size], self.value[:size], self.quality[:size])
        tail = ReadingBatch(self.sensor[size:], self.time[size:], self.value[size:], self.quality[size:])
        return head, tail

    @classmethod
    def from_columns(cls, *, sensor, time, value, quality) -> ReadingBatch:
        return cls(
            sensor=np.asarray(sensor, dtype=np.int64),
            # Integers are taken as microseconds since the epoch.
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
    Other backends, and servers that refuse ``COPY FROM STDIN`` (some proxies,
    the PGlite TimescaleDB build of the test suite), insert row by row.
    """
    if not len(batch):
        return 0
    # Rows in key order: concurrent writers of overlapping batches then take the key's locks in the same order,
    # so they wait for each other instead of deadlocking.
    batch = batch.sorted()
    connection = connections[using]
    if connection.vendor != "postgresql" or not connection.copy_from_stdin:
        return _insert_portable(batch, using)
    payload = _binary_copy_payload(batch)
    with transaction.atomic(using=using):
        try:
            # wrap_database_errors: psycopg's COPY errors arrive as Django's.
            with transaction.atomic(using=using), connection.cursor() as cursor, connection.wrap_database_errors:
                with cursor.copy(f"COPY {READINGS_TABLE} ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(payload)
                return len(batch)
        except IntegrityError:
            pass  # Some rows are already stored: merge instead.
        except NotSupportedError:
            connection.copy_from_stdin = False
            return _insert_portable(batch, using)
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
                "ORDER BY sensor_id, time ON CONFLICT DO NOTHING"
            )
            inserted = cursor.rowcount
            # ON COMMIT DELETE ROWS empties it at commit; truncate now for callers inside a longer transaction.
            cursor.execute(f"TRUNCATE {STAGE_TABLE}")
            return inserted


def _insert_portable(batch: ReadingBatch, using: str) -> int:
    """Row-by-row ``INSERT ... ON CONFLICT DO NOTHING`` in one transaction; the rowcount counts the new rows."""
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    # datetime64[us] -> naive UTC datetimes; SQLite stores them in Django's
    # own text format, so equal instants compare equal in the key.
    times = batch.time.astype(object)
    if connection.vendor == "postgresql":
        times = [time.replace(tzinfo=UTC) for time in times]
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


# --- ingest -------------------------------------------------------------------


@dataclass
class IngestResult:
    accepted: int
    duplicates: int
    errors: list[dict]

    @property
    def rejected(self) -> int:
        return len(self.errors)


_NUMBER_TYPES = (int, float)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _number(value) -> float | None:
    # bool is an int subclass, but true/false is not a measurement: exact types only.
    if type(value) not in _NUMBER_TYPES:
        return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond float's range (JSON allows 1e400 written out in digits)
        return None


def _plausible_sensor_id(value) -> bool:
    # PostgreSQL text cannot hold NUL: such an ID can name no sensor, and must not reach a query.
    return isinstance(value, str) and bool(value) and "\x00" not in value


def readings_ingest(
    *,
    items: list,
    sensors: QuerySet[Sensor],
    now: datetime,
    max_future_skew: timedelta,
    min_time: datetime | None = None,
    using: str = "default",
) -> IngestResult:
    """Validate each item, store the valid ones, report the others by index and reason.

    ``sensors`` are the sensors the caller may write to (an API key's limit);
    a sensor outside it is refused with the same words as an unknown one, so a
    limited key cannot learn which IDs exist elsewhere. Times before
    ``min_time`` (default: settings.READINGS_MIN_TIME) are refused: they are
    clock faults. A retried batch stores nothing new and counts its readings as
    duplicates. This runs for every reading a gateway sends, so the checks are
    plain Python, not serializers.
    """
    min_time = min_time or settings.READINGS_MIN_TIME
    wanted = {
        item["sensor_id"] for item in items if isinstance(item, dict) and _plausible_sensor_id(item.get("sensor_id"))
    }
    allowed = dict(sensors.using(using).filter(sensor_id__in=wanted).values_list("sensor_id", "pk"))
    latest_allowed = now + max_future_skew

    errors: list[dict] = []
    pks: list[int] = []
    micros: list[int] = []
    values: list[float] = []
    qualities: list[float] = []

    def reject(index: int, field: str | None, reason: str) -> None:
        errors.append({"index": index, "field": field, "reason": reason})

    for index, item in enumerate(items):
        if not isinstance(item, dict):
            reject(index, None, "Each reading must be an object with sensor_id, time and value.")
            continue
        sensor_id = item.get("sensor_id")
        pk = allowed.get(sensor_id) if isinstance(sensor_id, str) else None
        if pk is None:
            if not isinstance(sensor_id, str) or not sensor_id:
                reject(index, "sensor_id", "Required: the sensor's ID as a string.")
            else:
                reject(index, "sensor_id", f"Unknown sensor {sensor_id!r}, or not allowed for this API key.")
            continue
        try:
            moment = datetime.fromisoformat(item.get("time"))
        except (TypeError, ValueError):
            reject(index, "time", "Required: an ISO 8601 date-time with a UTC offset, e.g. 2026-11-26T08:00:00Z.")
            continue
        if moment.tzinfo is None:
            reject(index, "time", "The time has no UTC offset; add one, e.g. 2026-11-26T08:00:00Z.")
            continue
        if moment > latest_allowed:
            reject(index, "time", f"The time is more than {int(max_future_skew.total_seconds())} s in the future.")
            continue
        if moment < min_time:
            reject(index, "time", f"The time is before {min_time.isoformat()} (READINGS_MIN_TIME): check the clock.")
            continue
        value = _number(item.get("value"))
        if value is None or not math.isfinite(value):
            reject(index, "value", "Required: a finite number.")
            continue
        quality = _number(item.get("quality", 1.0))
        if quality is None or not 0.0 <= quality <= 1.0:
            reject(index, "quality", "Must be a number from 0 to 1.")
            continue
        pks.append(pk)
        # Exact integer microseconds since the epoch, whatever the offset.
        micros.append((moment - _EPOCH) // _MICROSECOND)
        values.append(value)
        qualities.append(quality)

    batch = ReadingBatch.from_columns(sensor=pks, time=micros, value=values, quality=qualities)
    accepted = readings_insert(batch=batch, using=using)
    if accepted:
        touched = set(pks)
        transaction.on_commit(lambda: latest_cache_forget(touched), using=using)
        if _ingest_hooks:
            sensor_pks = sorted(set(pks))
            transaction.on_commit(lambda: _after_ingest(sensor_pks), using=using)
    return IngestResult(accepted=accepted, duplicates=len(batch) - accepted, errors=errors)


# Apps that act on new readings (mlops: scoring them soon, on a worker) register a callback here: readings must
# not import them. Each is called once an ingest that stored readings has committed, with the primary keys of
# the sensors that got them; it must be quick (it runs in the gateway's request) and its failure never fails
# the ingest, whose readings are stored: the scheduled jobs find them anyway.
IngestHook = Callable[..., None]
_ingest_hooks: list[IngestHook] = []


def register_after_ingest(hook: IngestHook) -> None:
    if hook not in _ingest_hooks:
        _ingest_hooks.append(hook)


def _after_ingest(sensor_pks: list[int]) -> None:
    for hook in _ingest_hooks:
        try:
            hook(sensor_pks=sensor_pks)
        except Exception:
            logger.exception("After ingest: %s failed; the scheduled jobs will find the readings.", hook.__name__)


# --- clean-up -------------------------------------------------------------------


@dataclass(frozen=True)
class StrayReadings:
    """Readings stored before a time: how many, and on which sensors (external IDs)."""

    count: int
    sensor_ids: list[str]


def readings_before(*, before: datetime, sensor_ids: list[str] | None = None, using: str = "default") -> StrayReadings:
    """Readings older than ``before`` (by default the clock faults older than READINGS_MIN_TIME).

    Found sensor by sensor (an index probe each): a filter on time alone would read the whole table on plain
    PostgreSQL, whose only index on readings leads with the sensor. Only counts are read: rows from year 1 BC
    cannot be loaded into Python.
    """
    sensors = Sensor.objects.using(using).order_by("sensor_id")
    if sensor_ids is not None:
        sensors = sensors.filter(sensor_id__in=sensor_ids)
    stray = Reading.objects.using(using).filter(sensor=OuterRef("pk"), time__lt=before)
    found = dict(sensors.filter(Exists(stray)).values_list("pk", "sensor_id"))
    count = Reading.objects.using(using).filter(sensor_id__in=list(found), time__lt=before).count() if found else 0
    return StrayReadings(count=count, sensor_ids=list(found.values()))


def readings_delete_before(*, before: datetime, sensor_ids: list[str] | None = None, using: str = "default") -> int:
    """Delete the readings older than ``before`` (of ``sensor_ids`` only, if given); return how many went."""
    sensors = Sensor.objects.using(using)
    if sensor_ids is not None:
        sensors = sensors.filter(sensor_id__in=sensor_ids)
    pks = list(sensors.values_list("pk", flat=True))
    with transaction.atomic(using=using):
        deleted, _ = Reading.objects.using(using).filter(sensor_id__in=pks, time__lt=before).delete()
    if deleted:
        latest_cache_forget(pks)
    return deleted


# --- seed_data ----------------------------------------------------------------


class SeedConflict(Exception):
    """An asset or sensor the seed would create exists but was not created by the seed."""


class SeedOptionsConflict(SeedConflict):
    """The seeded fleet was made with another --seed, --interval or --anomaly-rate than this run asks for."""


@dataclass
class SeedCounts:
    created: int = 0
    present: int = 0

    def __str__(self) -> str:
        return f"created {self.created}, already present {self.present}"


@dataclass
class SeedReport:
    assets: SeedCounts
    sensors: SeedCounts
    readings: SeedCounts
    faults: SeedCounts
    end: datetime


SEED_MARK = "seeded"
# The options that decide what a seeded sensor's readings look like, recorded on each sensor. A rerun with
# other values would lay a second, different signal over the stored one (interleaved readings, faults that
# are not in the stored readings): it is refused, and --reset is the way to change them.
SEED_OPTIONS = "seed_options"


def _seed_options_args(options: dict) -> str:
    return f"--seed {options['seed']} --interval {options['interval']} --anomaly-rate {options['anomaly_rate']}"


def _check_seed_options(*, options: dict, using: str) -> None:
    recorded = (
        Sensor.objects.using(using)
        .filter(metadata__seeded=True)
        .values_list(f"metadata__{SEED_OPTIONS}", flat=True)
        .distinct()
    )
    # Sensors seeded before the options were recorded have none: nothing to compare with.
    conflicting = [item for item in recorded if isinstance(item, dict) and item != options]
    if conflicting:
        before = _seed_options_args(conflicting[0])
        raise SeedOptionsConflict(
            f"The seeded fleet was made with {before}; this run asks for {_seed_options_args(options)}. "
            f"Run again with {before} to extend the fleet, or start over with --reset (it deletes every seeded "
            "asset, sensor, reading and fault label) to seed with other options."
        )


def _floor(moment: datetime, interval: int) -> datetime:
    stamp = int(moment.timestamp())
    return datetime.fromtimestamp(stamp - stamp % interval, tz=UTC)


def _seed_fleet(
    *, sensors: int, interval: int, end: datetime, options: dict
) -> tuple[list[Sensor], SeedCounts, SeedCounts]:
    specs = [sensor_spec(number) for number in range(1, sensors + 1)]
    asset_counts, sensor_counts = SeedCounts(), SeedCounts()
    assets: dict[str, Asset] = {}
    for spec in {spec.asset.code: spec.asset for spec in specs}.values():
        asset, created = Asset.objects.get_or_create(
            code=spec.code,
            defaults={
                "name": spec.name,
                "site": spec.site,
                "location": spec.location,
                "criticality": spec.criticality,
                "metadata": {SEED_MARK: True, "machine": spec.machine.name},
            },
        )
        if not created and not asset.metadata.get(SEED_MARK):
            raise SeedConflict(f"Asset {spec.code} exists and was not created by seed_data; it is left untouched.")
        asset_counts.created += created
        asset_counts.present += not created
        assets[spec.code] = asset
    result = []
    for spec in specs:
        profile = spec.profile
        sensor, created = Sensor.objects.get_or_create(
            sensor_id=spec.sensor_id,
            defaults={
                "name": spec.name,
                "asset": assets[spec.asset.code],
                "sensor_type": spec.sensor_type,
                "unit": profile.unit,
                "normal_min": profile.normal_min,
                "normal_max": profile.normal_max,
                "sampling_interval": interval,
                "metadata": {SEED_MARK: True, "seed_end": end.isoformat(), SEED_OPTIONS: options},
            },
        )
        if not created and not sensor.metadata.get(SEED_MARK):
            raise SeedConflict(
                f"Sensor {spec.sensor_id} exists and was not created by seed_data; "
                "synthetic readings are never added to a real sensor."
            )
        sensor_counts.created += created
        sensor_counts.present += not created
        result.append(sensor)
    return result, asset_counts, sensor_counts


def seed_anchor(*, sensors: int) -> datetime | None:
    """The latest end seeded (the first run's, or a later ``--end``), so that re-runs without ``--end`` add nothing."""
    ids = [sensor_spec(number).sensor_id for number in range(1, sensors + 1)]
    for metadata in Sensor.objects.filter(sensor_id__in=ids).order_by("sensor_id").values_list("metadata", flat=True):
        if metadata.get(SEED_MARK) and metadata.get("seed_end"):
            return datetime.fromisoformat(metadata["seed_end"])
    return None


def fleet_seed(
    *,
    sensors: int,
    readings: int,
    interval: int,
    end: datetime | None,
    seed: int,
    anomaly_rate: float,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
    using: str = "default",
) -> SeedReport:
    """Create (or complete) a synthetic fleet with readings and labelled faults; idempotent.

    ``end`` None means: the anchor recorded by an earlier run, else now floored
    to ``interval``. Readings go through ``readings_insert`` in batches of
    ``batch_size``, so memory stays bounded whatever ``readings`` is.

    Labels are ground truth, so they are made only for the readings this run
    stored: a rerun whose window overlaps stored readings (a later ``--end``,
    more ``--readings``, more ``--sensors``, which shortens every sensor's
    window) generates a new signal over the same times, but only its readings
    at times not yet stored go in, and only the faults among those are
    labelled. A rerun with another ``seed``, ``interval`` or ``anomaly_rate``
    than the fleet was made with raises ``SeedOptionsConflict``.
    """
    options = {"seed": seed, "interval": interval, "anomaly_rate": anomaly_rate}
    _check_seed_options(options=options, using=using)
    end = _floor(end or seed_anchor(sensors=sensors) or datetime.now(UTC), interval)
    with transaction.atomic(using=using):
        fleet, asset_counts, sensor_counts = _seed_fleet(sensors=sensors, interval=interval, end=end, options=options)

    reading_counts, fault_counts = SeedCounts(), SeedCounts()
    end64 = np.datetime64(end.replace(tzinfo=None), "us")
    pending: list[ReadingBatch] = []
    pending_rows = 0
    labels: list[FaultLabel] = []

    def flush(limit: int) -> None:
        nonlocal pending, pending_rows
        while pending_rows >= limit and pending_rows:
            merged = ReadingBatch.from_columns(
                sensor=np.concatenate([b.sensor for b in pending]),
                time=np.concatenate([b.time for b in pending]),
                value=np.concatenate([b.value for b in pending]),
                quality=np.concatenate([b.quality for b in pending]),
            )
            head, tail = merged.split(batch_size)
            inserted = readings_insert(batch=head, using=using)
            reading_counts.created += inserted
            reading_counts.present += len(head) - inserted
            if progress:
                progress(len(head))
            pending, pending_rows = ([tail], len(tail)) if len(tail) else ([], 0)

    for sensor, count in zip(fleet, readings_per_sensor(readings, sensors), strict=True):
        if not count:
            continue
        number = int(sensor.sensor_id.rsplit("-", 1)[1])
        profile = PROFILES[sensor.sensor_type]
        params = SignalParams(
            number=number,
            sensor_type=sensor.sensor_type,
            asset_number=sensor_spec(number).asset.number,
            normal_min=profile.normal_min if sensor.normal_min is None else sensor.normal_min,
            normal_max=profile.normal_max if sensor.normal_max is None else sensor.normal_max,
        )
        signal = SensorSignal(params, count=count, end=end64, interval=interval, seed=seed, anomaly_rate=anomaly_rate)
        new = np.ones(count, dtype=bool)
        offset = 0
        for times, values, quality in signal.blocks():
            # Asked before the block is queued: this sensor's earlier blocks hold other times.
            new[offset : offset + len(times)] = ~_stored(sensor_pk=sensor.pk, times=times, using=using)
            offset += len(times)
            pending.append(ReadingBatch(np.full(len(times), sensor.pk, dtype=np.int64), times, values, quality))
            pending_rows += len(times)
            flush(batch_size)
        labels.extend(
            FaultLabel(
                sensor=sensor,
                kind=kind,
                start=_aware(start),
                end=_aware(stop),
                source=FaultSource.SEED,
            )
            for kind, start, stop in signal.labels(stored=new)
        )
    flush(1)

    if reading_counts.created:
        latest_cache_forget(sensor.pk for sensor in fleet)
    seeded = FaultLabel.objects.using(using).filter(sensor__in=fleet, source=FaultSource.SEED)
    before = seeded.count()
    FaultLabel.objects.using(using).bulk_create(labels, ignore_conflicts=True, batch_size=1000)
    fault_counts.created = seeded.count() - before
    fault_counts.present = before
    _move_anchor(fleet=fleet, end=end, using=using)
    return SeedReport(asset_counts, sensor_counts, reading_counts, fault_counts, end)


def _stored(*, sensor_pk: int, times: np.ndarray, using: str) -> np.ndarray:
    """One flag per time in ``times`` (ascending): is a reading of the sensor already stored at it?"""
    times = times.astype("datetime64[us]")
    connection = connections[using]
    if connection.vendor == "postgresql":
        # Rows are only fetched for a block that is partly stored (a top-up's edge): a rerun over a million
        # stored readings took 23 s instead of 3 s when every stored time came back as a datetime. The count
        # is of readings on this block's grid of times, so readings ingested in between cannot fake a match.
        first = int(times[0].astype(np.int64))
        step = int((times[1] - times[0]).astype(np.int64)) if len(times) > 1 else 1
        where = (
            f"FROM {READINGS_TABLE} WHERE sensor_id = %s AND time >= %s AND time <= %s "
            "AND mod((extract(epoch FROM time) * 1000000)::bigint - %s, %s) = 0"
        )
        params = [sensor_pk, _aware(times[0]), _aware(times[-1]), first, step]
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) {where}", params)
            [count] = cursor.fetchone()
            if count in (0, len(times)):
                return np.full(len(times), bool(count))
            cursor.execute(f"SELECT (extract(epoch FROM time) * 1000000)::bigint {where}", params)
            found = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64).astype("datetime64[us]")
    else:
        stored = (
            Reading.objects.using(using)
            .filter(sensor_id=sensor_pk, time__gte=_aware(times[0]), time__lte=_aware(times[-1]))
            .values_list("time", flat=True)
        )
        found = np.array([moment.astimezone(UTC).replace(tzinfo=None) for moment in stored], dtype="datetime64[us]")
    return np.isin(times, found)


def _move_anchor(*, fleet: list[Sensor], end: datetime, using: str) -> None:
    # A later --end extends the fleet: later reruns without --end (and sensors added by --sensors) end there too.
    moved = []
    for sensor in fleet:
        recorded = sensor.metadata.get("seed_end")
        if recorded is None or datetime.fromisoformat(recorded) < end:
            sensor.metadata["seed_end"] = end.isoformat()
            moved.append(sensor)
    Sensor.objects.using(using).bulk_update(moved, ["metadata"], batch_size=1000)


def _aware(moment: np.datetime64) -> datetime:
    return moment.astype("datetime64[us]").astype(datetime).replace(tzinfo=UTC)


# Apps that keep data derived from readings (mlops: anomalies, alerts, where scoring stopped) register a
# callback here, as they register chart marks with readings.selectors: readings must not import them. Each
# is called inside the reset's transaction with the seeded sensors about to go, before they are deleted,
# and returns how many rows of each model it deleted.
SeedResetHook = Callable[..., dict[type[models.Model], int]]
_seed_reset_hooks: list[SeedResetHook] = []


def register_seed_reset(hook: SeedResetHook) -> None:
    if hook not in _seed_reset_hooks:
        _seed_reset_hooks.append(hook)


@dataclass
class SeedReset:
    """What ``fleet_seed_reset`` deleted, per model (in the order to report), and the API keys it revoked."""

    deleted: dict[type[models.Model], int]
    revoked_keys: int


def fleet_seed_reset(*, using: str = "default") -> SeedReset:
    """Delete everything ``seed_data`` created and what was derived from it; count each kind apart.

    Readings, fault labels, then whatever the registered hooks remove (anomalies, alerts, scoring markers),
    then the sensors and their assets. Each model is deleted and counted on its own: a sensor's delete()
    would count every cascaded row as a sensor. An API key limited to seeded assets only is revoked: with
    its assets gone it would have no asset limit left, that is, see every asset.
    """
    deleted: dict[type[models.Model], int] = {}
    with transaction.atomic(using=using):
        sensors = Sensor.objects.using(using).filter(metadata__seeded=True)
        sensor_pks = list(sensors.values_list("pk", flat=True))
        deleted[Reading] = Reading.objects.using(using).filter(sensor_id__in=sensor_pks).delete()[0]
        deleted[FaultLabel] = FaultLabel.objects.using(using).filter(sensor_id__in=sensor_pks).delete()[0]
        for hook in _seed_reset_hooks:
            for model, count in hook(
                sensors=Sensor.objects.using(using).filter(pk__in=sensor_pks), using=using
            ).items():
                deleted[model] = deleted.get(model, 0) + count
        deleted[Sensor] = Sensor.objects.using(using).filter(pk__in=sensor_pks).delete()[1].get(Sensor._meta.label, 0)
        assets = Asset.objects.using(using).filter(metadata__seeded=True, sensors__isnull=True)
        asset_pks = list(assets.values_list("pk", flat=True))
        keys = (
            APIKey.objects.using(using)
            .filter(revoked=False, assets__in=asset_pks)
            .exclude(assets__in=Asset.objects.using(using).exclude(pk__in=asset_pks))
            .distinct()
        )
        revoked = (
            APIKey.objects.using(using).filter(pk__in=list(keys.values_list("pk", flat=True))).update(revoked=True)
        )
        deleted[Asset] = assets.delete()[1].get(Asset._meta.label, 0)
    transaction.on_commit(lambda: latest_cache_forget(sensor_pks), using=using)
    return SeedReset(deleted=deleted, revoked_keys=revoked)


# --- import_readings ----------------------------------------------------------

# Words in a column's name (or a new sensor's ID) that tell a new sensor's type when --sensor-type does not.
# There is deliberately no generic type to fall back on: anomaly models are trained per sensor type, and a
# catch-all type would pool unrelated signals into one model. A name that tells nothing needs --sensor-type.
_TYPE_WORDS = (
    ("thermocouple", SensorType.TEMPERATURE),
    ("temp", SensorType.TEMPERATURE),
    ("accel", SensorType.VIBRATION),
    ("vib", SensorType.VIBRATION),
    ("pressure", SensorType.PRESSURE),
    ("humid", SensorType.HUMIDITY),
    ("volt", SensorType.VOLTAGE),
    ("current", SensorType.CURRENT),
    ("rpm", SensorType.RPM),
    ("speed", SensorType.RPM),
    ("flow", SensorType.FLOW),
)
# Key of --sensor-type / --unit values that apply to every new sensor not named on its own.
ANY_COLUMN = "*"
IMPORT_MARK = "imported"
# Cells (readings) read per chunk at most: a file with many sensor columns is read in fewer lines at a time,
# so memory stays bounded by this rather than by --chunk-size times the columns.
IMPORT_CHUNK_CELLS = 1_000_000
# Sampling interval of a new sensor when its first rows do not show one (Sensor's own default).
_DEFAULT_INTERVAL = 60


def sensor_type_guess(name: str) -> str | None:
    lowered = name.lower()
    return next((sensor_type for word, sensor_type in _TYPE_WORDS if word in lowered), None)


def column_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@dataclass
class ImportReport:
    """What ``readings_import`` did. Readings are counted one per value cell; problems are kept up to a limit."""

    rows: int = 0
    stored: int = 0
    present: int = 0
    repeated: int = 0
    rejected: int = 0
    blank: int = 0
    problem_count: int = 0
    problems: list[Problem] = field(default_factory=list)
    repeats: list[Problem] = field(default_factory=list)
    labels_created: int = 0
    labels_present: int = 0
    asset_created: str | None = None
    sensors_created: list[str] = field(default_factory=list)
    batches: int = 0


@dataclass
class _NewSensor:
    sensor_id: str
    name: str
    sensor_type: str
    unit: str


class _ImportSensors:
    """Sensor IDs to primary keys, creating the asset and its sensors when asked (``create``)."""

    def __init__(self, *, asset_code, create, site, asset_name, types, units, interval, source_name, using):
        self.asset_code = asset_code
        self.create = create
        self.site = site
        self.asset_name = asset_name
        self.types = types
        self.units = units
        self.interval = interval
        self.source_name = source_name
        self.using = using
        self.asset = Asset.objects.using(using).filter(code=asset_code).first() if asset_code else None
        if asset_code and self.asset is None:
            if not create:
                raise ImportRefused(
                    f"Asset {asset_code!r} does not exist: add it in the admin, or import with --create --site SITE "
                    "to create it with its sensors."
                )
            if not site:
                raise ImportRefused(f"--create makes a new asset {asset_code!r} and needs its --site.")
            _valid_id(asset_code, what="asset code")
        if create and not asset_code:
            raise ImportRefused("--create needs --asset CODE: the asset new sensors are mounted on.")
        self.known: dict[str, tuple[int, int]] = {}  # sensor ID -> (pk, asset pk)
        self.created: list[str] = []
        self.asset_created: str | None = None

    def lookup(self, sensor_ids: Iterable[str]) -> None:
        wanted = [sensor_id for sensor_id in sensor_ids if sensor_id not in self.known and "\x00" not in sensor_id]
        for start in range(0, len(wanted), 5000):
            rows = Sensor.objects.using(self.using).filter(sensor_id__in=wanted[start : start + 5000])
            for sensor_id, pk, asset_pk in rows.values_list("sensor_id", "pk", "asset_id"):
                self.known[sensor_id] = (pk, asset_pk)

    def foreign(self, sensor_id: str) -> str | None:
        """The asset code of a known sensor that is not on --asset's asset, else None."""
        if self.asset_code is None or sensor_id not in self.known:
            return None
        asset_pk = self.known[sensor_id][1]
        if self.asset is not None and asset_pk == self.asset.pk:
            return None
        return Asset.objects.using(self.using).filter(pk=asset_pk).values_list("code", flat=True).first() or "?"

    def new(self, sensor_id: str, name: str) -> _NewSensor:
        """What a missing sensor will be made as; refused when its ID or type cannot be had."""
        _valid_id(sensor_id, what=f"sensor ID for {name!r}")
        sensor_type = self.types.get(name) or self.types.get(sensor_id) or self.types.get(ANY_COLUMN)
        sensor_type = sensor_type or sensor_type_guess(name) or sensor_type_guess(sensor_id)
        if sensor_type is None:
            raise ImportRefused(
                f"Cannot tell the type of new sensor {sensor_id!r} from its name: give it with "
                f"--sensor-type {name!r}=TYPE (or a bare --sensor-type TYPE for every new sensor); types: "
                f"{', '.join(SensorType.values)}."
            )
        unit = self.units.get(name) or self.units.get(sensor_id) or self.units.get(ANY_COLUMN) or ""
        return _NewSensor(sensor_id, name, sensor_type, unit)

    def make(self, new: list[_NewSensor], times: np.ndarray) -> None:
        """Create ``new`` sensors (and the asset, the first time); ``times`` (µs) show their sampling interval."""
        if not new:
            return
        interval = self.interval or _sampling_interval(times)
        with transaction.atomic(using=self.using):
            if self.asset is None:
                self.asset = Asset.objects.using(self.using).create(
                    code=self.asset_code,
                    name=self.asset_name or self.asset_code,
                    site=self.site,
                    metadata={IMPORT_MARK: True, "import_file": self.source_name},
                )
                self.asset_created = self.asset.code
            sensors = Sensor.objects.using(self.using).bulk_create(
                [
                    Sensor(
                        sensor_id=spec.sensor_id,
                        name=spec.name,
                        asset=self.asset,
                        sensor_type=spec.sensor_type,
                        unit=spec.unit,
                        sampling_interval=interval,
                        metadata={IMPORT_MARK: True, "import_file": self.source_name, "import_column": spec.name},
                    )
                    for spec in new
                ]
            )
        for sensor in sensors:
            self.known[sensor.sensor_id] = (sensor.pk, self.asset.pk)
            self.created.append(sensor.sensor_id)


def _valid_id(value: str, *, what: str) -> None:
    try:
        external_id_validator(value)
    except ValidationError as exc:
        raise ImportRefused(f"{value!r} is not a valid {what}: {exc.messages[0]}") from exc
    if len(value) > 64:
        raise ImportRefused(f"{value!r} is not a valid {what}: at most 64 characters. Name it with --map.")


def _sampling_interval(times: np.ndarray) -> int:
    """Median step between distinct times (µs) in whole seconds, at least 1; the default when there is none."""
    steps = np.diff(np.unique(times))
    if not len(steps):
        return _DEFAULT_INTERVAL
    return max(1, round(float(np.median(steps)) / 1e6))


class _Repeats:
    """Finds readings whose (sensor, time) an earlier line of the file already gave.

    Memory stays flat: a chunk is compared with itself, the previous chunk and each sensor's latest reading
    in the file. That finds every repeat in a file whose rows are in time order per sensor, and repeats
    within a chunk's length back in any file (an hour that daylight saving repeats, a pasted block). A
    repeat further back is counted with "already present" (the first one is kept either way).
    """

    def __init__(self):
        empty = np.zeros(0, dtype=np.int64)
        self.previous = (empty, empty, empty)
        self.latest: dict[int, tuple[int, int]] = {}  # sensor pk -> (time, line) of its latest reading

    def find(self, sensor: np.ndarray, time: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(repeat mask, line of the first reading of each repeat) for the chunk's readings, in their order."""
        previous_sensor, previous_time, previous_line = self.previous
        horizon = previous_line.min() if len(previous_line) else (line.min() if len(line) else 0)
        older = [self.latest[pk] + (pk,) for pk in np.unique(sensor).tolist() if pk in self.latest]
        older = [entry for entry in older if entry[1] < horizon]
        older_time = np.array([entry[0] for entry in older], dtype=np.int64)
        older_line = np.array([entry[1] for entry in older], dtype=np.int64)
        older_sensor = np.array([entry[2] for entry in older], dtype=np.int64)
        offset = len(previous_sensor) + len(older_sensor)
        all_sensor = np.concatenate([previous_sensor, older_sensor, sensor])
        all_time = np.concatenate([previous_time, older_time, time])
        all_line = np.concatenate([previous_line, older_line, line])
        order = np.lexsort((all_line, all_time, all_sensor))
        ordered_sensor, ordered_time = all_sensor[order], all_time[order]
        same = np.zeros(len(order), dtype=bool)
        same[1:] = (ordered_sensor[1:] == ordered_sensor[:-1]) & (ordered_time[1:] == ordered_time[:-1])
        group_start = np.maximum.accumulate(np.where(same, 0, np.arange(len(order))))
        first_line = all_line[order][group_start]
        hits = same & (order >= offset)
        repeat = np.zeros(len(sensor), dtype=bool)
        first = np.zeros(len(sensor), dtype=np.int64)
        repeat[order[hits] - offset] = True
        first[order[hits] - offset] = first_line[hits]

        kept = ~repeat
        self.previous = (sensor[kept], time[kept], line[kept])
        kept_sensor, kept_time, kept_line = self.previous
        if len(kept_sensor):
            # The last occurrence of each sensor in file order (readings are in line order).
            pks, reversed_index = np.unique(kept_sensor[::-1], return_index=True)
            last = len(kept_sensor) - 1 - reversed_index
            for pk, index in zip(pks.tolist(), last.tolist(), strict=True):
                self.latest[pk] = (int(kept_time[index]), int(kept_line[index]))
        return repeat, first


class _LabelRuns:
    """Runs of 1s in a label column, per key, carried from chunk to chunk: each closed run is (start, end) µs."""

    def __init__(self):
        self.open: dict[tuple, tuple[int, int]] = {}

    def feed(self, key: tuple, times: np.ndarray, flags: np.ndarray) -> list[tuple[int, int]]:
        carried = self.open.pop(key, None)
        if not len(flags):
            if carried:
                self.open[key] = carried
            return []
        flags = flags.astype(bool)
        closed: list[tuple[int, int]] = []
        before = np.concatenate(([carried is not None], flags[:-1]))
        after = np.concatenate((flags[1:], [True]))
        begins = [carried[0]] if carried and flags[0] else []
        if carried and not flags[0]:
            closed.append(carried)
        begins += times[flags & ~before].tolist()
        ends = times[flags & ~after].tolist()
        if flags[-1]:
            self.open[key] = (begins.pop(), int(times[-1]))
        closed += [(min(begin, end), max(begin, end)) for begin, end in zip(begins, ends, strict=True)]
        return closed

    def close(self) -> list[tuple[tuple, tuple[int, int]]]:
        runs = [(key, (min(run), max(run))) for key, run in self.open.items()]
        self.open.clear()
        return runs


def readings_import(
    *,
    path: Path | str,
    form: str | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8-sig",
    time_column: str | None = None,
    time_format: str | None = None,
    zone: tzinfo = UTC,
    sensor_column: str | None = None,
    value_column: str | None = None,
    mapping: dict[str, str] | None = None,
    skip_columns: Iterable[str] = (),
    label_columns: dict[str, str] | None = None,
    asset_code: str | None = None,
    create: bool = False,
    site: str | None = None,
    asset_name: str | None = None,
    sensor_types: dict[str, str] | None = None,
    units: dict[str, str] | None = None,
    sampling_interval: int | None = None,
    chunk_size: int = 50_000,
    max_problems: int = 20,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    using: str = "default",
) -> ImportReport:
    """Import a CSV file of readings (long or wide form, gzip or not), ``chunk_size`` lines at a time.

    Long form: a sensor, a time, a value and optionally a quality column, one reading per row. Wide form: a
    time column and one column per sensor, named through ``mapping`` (column -> sensor ID), else
    ``<asset code>-<column slug>`` when ``asset_code`` is given, else the column's own name. Each chunk goes
    to ``readings_insert`` in one COPY, so a rerun stores nothing new and counts it as already present.
    Rows and cells that break ingest's rules (times before READINGS_MIN_TIME or in the future, values that
    are not finite numbers, qualities outside 0..1, times that cannot be read) are reported by line and the
    rest is imported; so are readings repeating a (sensor, time) given by an earlier line (the first is
    kept). ``label_columns`` (column -> FaultKind) turn runs of 1 into FaultLabels (source IMPORT) of the
    row's sensors. ``progress(position, rows)`` is called after each chunk with the bytes read so far.
    Raises ImportRefused when the file or its mapping cannot be imported as asked.
    """
    mapping = dict(mapping or {})
    label_columns = dict(label_columns or {})
    skip = set(skip_columns)
    sensor_types = dict(sensor_types or {})
    for column, kind in label_columns.items():
        if kind not in FaultKind.values:
            raise ImportRefused(
                f"Label column {column!r}: {kind!r} is not a fault kind; use one of {', '.join(FaultKind.values)}."
            )
    for name, sensor_type in sensor_types.items():
        if sensor_type not in SensorType.values:
            raise ImportRefused(
                f"--sensor-type {name}={sensor_type}: not a sensor type; use one of {', '.join(SensorType.values)}."
            )
    if chunk_size < 1:
        raise ImportRefused("The chunk size must be at least 1 line.")
    now = now or timezone.now()
    min_us = (settings.READINGS_MIN_TIME - _EPOCH) // _MICROSECOND
    latest_us = (now + settings.INGEST_MAX_FUTURE_SKEW - _EPOCH) // _MICROSECOND
    skew = int(settings.INGEST_MAX_FUTURE_SKEW.total_seconds())

    with CsvSource(path, encoding=encoding) as source:
        header, delimiter = read_header(source, delimiter)
        layout, columns = _import_layout(
            header=header,
            delimiter=delimiter,
            form=form,
            time_column=time_column,
            sensor_column=sensor_column,
            value_column=value_column,
            mapping=mapping,
            skip=skip,
            labels=list(label_columns),
            asset_code=asset_code,
        )
        sensors = _ImportSensors(
            asset_code=asset_code,
            create=create,
            site=site,
            asset_name=asset_name,
            types=sensor_types,
            units=dict(units or {}),
            interval=sampling_interval,
            source_name=source.path.name,
            using=using,
        )
        pending: list[_NewSensor] = []
        if not layout.long:
            pending = _wide_sensors(columns, header, sensors)
        wide_pks = None
        report = ImportReport()
        repeats = _Repeats()
        runs = _LabelRuns()
        label_kinds = [label_columns[layout.name(index)] for index in layout.labels]
        time_name = layout.name(layout.time)
        lines = max(1, min(chunk_size, IMPORT_CHUNK_CELLS // len(layout.values)))
        reader = ChunkReader(source, layout, TimeParser(time_format=time_format, zone=zone), size=lines)

        def note(problems: list[Problem], into: list[Problem]) -> None:
            problems.sort(key=lambda problem: problem.line)
            into.extend(problems[: max(0, max_problems - len(into))])

        for chunk in reader:
            report.rows += len(chunk)
            problems = list(chunk.problems)
            row_ok = chunk.row_ok.copy()
            early = row_ok & (chunk.time < min_us)
            late = row_ok & (chunk.time > latest_us)
            for index in np.flatnonzero(early).tolist():
                problems.append(
                    Problem(
                        int(chunk.line[index]),
                        time_name,
                        f"The time is before {settings.READINGS_MIN_TIME.isoformat()} (READINGS_MIN_TIME): "
                        "check the clock, or the --timezone / --time-format.",
                    )
                )
            for index in np.flatnonzero(late).tolist():
                problems.append(
                    Problem(int(chunk.line[index]), time_name, f"The time is more than {skew} s in the future.")
                )
            row_ok &= ~(early | late)

            row_sensor = None
            if layout.long:
                row_sensor = _long_sensors(chunk, row_ok, sensors, mapping, layout.name(layout.sensor), problems)
                row_ok &= row_sensor >= 0
                cell_sensor = row_sensor[:, None]
            else:
                if pending:
                    sensors.make(pending, chunk.time[row_ok])
                    pending = []
                if wide_pks is None:
                    wide_pks = np.array([sensors.known[columns[index]][0] for index in layout.values], dtype=np.int64)
                cell_sensor = wide_pks[None, :]

            take = row_ok[:, None] & chunk.cell_ok
            report.rejected += int((chunk.present & ~take).sum())
            report.blank += int((~chunk.present).sum())
            shape = chunk.values.shape
            sensor = np.broadcast_to(cell_sensor, shape)[take]
            time = np.broadcast_to(chunk.time[:, None], shape)[take]
            line = np.broadcast_to(chunk.line[:, None], shape)[take]
            value = chunk.values[take]
            quality = np.broadcast_to(chunk.quality[:, None], shape)[take]

            repeat, first = repeats.find(sensor, time, line)
            if repeat.any():
                report.repeated += int(repeat.sum())
                names = {pk: sensor_id for sensor_id, (pk, _) in sensors.known.items()}
                note(
                    [
                        Problem(
                            int(line[index]),
                            None,
                            f"Sensor {names.get(int(sensor[index]), '?')!r} at "
                            f"{microseconds_to_datetime(int(time[index])).isoformat()} repeats line "
                            f"{int(first[index])}; the first is kept.",
                        )
                        for index in np.flatnonzero(repeat)[:max_problems].tolist()
                    ],
                    report.repeats,
                )
                keep = ~repeat
                sensor, time, value, quality = sensor[keep], time[keep], value[keep], quality[keep]

            batch = ReadingBatch.from_columns(sensor=sensor, time=time, value=value, quality=quality)
            inserted = readings_insert(batch=batch, using=using)
            report.batches += 1
            report.stored += inserted
            report.present += len(batch) - inserted
            if inserted:
                touched = np.unique(sensor).tolist()
                transaction.on_commit(lambda touched=touched: latest_cache_forget(touched), using=using)

            if layout.labels:
                closed = _label_runs(chunk, row_ok, row_sensor, len(layout.labels), runs)
                _store_labels(closed, label_kinds, wide_pks, report, using)

            report.problem_count += len(problems)
            note(problems, report.problems)
            if progress:
                progress(chunk.position, len(chunk))

        if layout.labels:
            _store_labels(runs.close(), label_kinds, wide_pks, report, using)
    report.asset_created = sensors.asset_created
    report.sensors_created = sensors.created
    return report


def _import_layout(
    *, header, delimiter, form, time_column, sensor_column, value_column, mapping, skip, labels, asset_code
) -> tuple[Layout, dict[int, str]]:
    """The file's layout, and (wide form) the sensor ID of each sensor column by index."""
    time_index = find_column(header, time_column, TIME_COLUMNS, what="the time")
    time_index = 0 if time_index is None else time_index
    sensor_index = find_column(header, sensor_column, LONG_SENSOR_COLUMNS, what="the sensor")
    value_index = find_column(header, value_column, ("value",), what="the value")
    long = form == "long" or (form is None and sensor_index is not None and value_index is not None)
    if long and (sensor_index is None or value_index is None):
        raise ImportRefused(
            "Long form needs a sensor column (sensor or sensor_id, or --sensor-column) and a value column "
            f"(value, or --value-column); line 1 has {', '.join(header)}."
        )
    label_indexes = []
    for name in labels:
        if name not in header:
            raise ImportRefused(f"No label column {name!r} in line 1 (columns: {', '.join(header)}).")
        label_indexes.append(header.index(name))
    used = {time_index, *label_indexes}
    if long:
        quality_index = find_column(header, None, ("quality",), what="the quality")
        used |= {sensor_index, value_index} | ({quality_index} if quality_index is not None else set())
        unused = [name for index, name in enumerate(header) if index not in used and name not in skip]
        if unused:
            raise ImportRefused(
                f"Column {unused[0]!r} is not used in long form (sensor, time, value, quality, labels); "
                f"leave it out with --skip-column {unused[0]!r}."
            )
        layout = Layout(header, delimiter, True, time_index, [value_index], sensor_index, quality_index, label_indexes)
        return layout, {}
    missing = [name for name in mapping if name not in header]
    if missing:
        raise ImportRefused(f"--map names column {missing[0]!r}, which line 1 lacks (columns: {', '.join(header)}).")
    columns: dict[int, str] = {}
    for index, name in enumerate(header):
        if index in used or name in skip:
            continue
        if name in mapping:
            columns[index] = mapping[name]
        elif asset_code:
            columns[index] = f"{asset_code}-{column_slug(name)}"
        else:
            columns[index] = name
    if not columns:
        raise ImportRefused("No sensor columns left besides the time and label columns; nothing to import.")
    twice = {sensor_id for sensor_id in columns.values() if list(columns.values()).count(sensor_id) > 1}
    if twice:
        raise ImportRefused(
            f"Several columns map to sensor {sorted(twice)[0]!r}; map each column to its own sensor with --map."
        )
    layout = Layout(header, delimiter, False, time_index, list(columns), labels=label_indexes)
    return layout, columns


def _wide_sensors(columns: dict[int, str], header: list[str], sensors: _ImportSensors) -> list[_NewSensor]:
    """Check every sensor column's sensor before any reading is read; return those to create."""
    sensors.lookup(columns.values())
    for sensor_id in columns.values():
        owner = sensors.foreign(sensor_id)
        if owner:
            raise ImportRefused(
                f"Sensor {sensor_id!r} belongs to asset {owner!r}, not {sensors.asset_code!r}; "
                "map the column to another sensor with --map, or leave out --asset."
            )
    missing = [index for index, sensor_id in columns.items() if sensor_id not in sensors.known]
    if missing and not sensors.create:
        listed = ", ".join(f"{header[index]!r} -> {columns[index]!r}" for index in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ImportRefused(
            f"Unknown sensors for columns {listed}{more}. Map the columns to existing sensors with "
            "--map COLUMN=SENSOR-ID (or --map-file), leave columns out with --skip-column, or create the "
            "sensors with --asset CODE --create."
        )
    return [sensors.new(columns[index], header[index]) for index in missing]


def _long_sensors(
    chunk, row_ok: np.ndarray, sensors: _ImportSensors, mapping: dict[str, str], column: str, problems: list[Problem]
) -> np.ndarray:
    """The sensor pk of each row of a long-form chunk; -1 (with a problem) where the row's sensor is not usable."""
    if not len(chunk):
        return np.zeros(0, dtype=np.int64)
    names, inverse = np.unique(chunk.sensors, return_inverse=True)
    ids = [mapping.get(name, name) for name in names.tolist()]
    sensors.lookup(ids)
    pks = np.full(len(ids), -1, dtype=np.int64)
    reasons: dict[int, str] = {}
    for position, sensor_id in enumerate(ids):
        if not sensor_id:
            reasons[position] = "Required: the sensor's ID."
            continue
        rows = row_ok & (inverse == position)
        if sensor_id not in sensors.known and sensors.create and rows.any():
            try:
                _valid_id(sensor_id, what="sensor ID")
            except ImportRefused as exc:
                reasons[position] = str(exc)
                continue
            sensors.make([sensors.new(sensor_id, names[position])], chunk.time[rows])
        if sensor_id not in sensors.known:
            reasons[position] = (
                f"Unknown sensor {sensor_id!r}: add it first (admin or API), map it with --map, "
                "or import with --asset CODE --create."
            )
            continue
        owner = sensors.foreign(sensor_id)
        if owner:
            reasons[position] = f"Sensor {sensor_id!r} belongs to asset {owner!r}, not {sensors.asset_code!r}."
            continue
        pks[position] = sensors.known[sensor_id][0]
    result = pks[inverse]
    for index in np.flatnonzero(row_ok & (result < 0)).tolist():
        problems.append(Problem(int(chunk.line[index]), column, reasons[int(inverse[index])]))
    return result


def _label_runs(chunk, row_ok: np.ndarray, row_sensor: np.ndarray | None, labels: int, runs: _LabelRuns) -> list:
    """Runs of 1s closed by this chunk, as ((sensor pk or None for every sensor column, label), (start, end))."""
    closed = []
    times = chunk.time[row_ok]
    flags = chunk.labels[row_ok]
    if row_sensor is None:
        for label in range(labels):
            closed += [((None, label), run) for run in runs.feed((None, label), times, flags[:, label])]
        return closed
    owners = row_sensor[row_ok]
    order = np.argsort(owners, kind="stable")  # file order within each sensor
    owners, times, flags = owners[order], times[order], flags[order]
    bounds = np.flatnonzero(np.diff(owners)) + 1
    for start, stop in zip(np.r_[0, bounds].tolist(), np.r_[bounds, len(owners)].tolist(), strict=True):
        if start == stop:
            continue
        pk = int(owners[start])
        for label in range(labels):
            key = (pk, label)
            closed += [(key, run) for run in runs.feed(key, times[start:stop], flags[start:stop, label])]
    return closed


def _store_labels(closed: list, kinds: list[str], wide_pks, report: ImportReport, using: str) -> None:
    """Save closed runs as FaultLabels (source IMPORT); a run saved by an earlier import is counted present."""
    if not closed:
        return
    labels = []
    for (pk, label), (start, end) in closed:
        for sensor_pk in [pk] if pk is not None else wide_pks.tolist():
            labels.append(
                FaultLabel(
                    sensor_id=sensor_pk,
                    kind=kinds[label],
                    start=microseconds_to_datetime(start),
                    end=microseconds_to_datetime(end),
                    source=FaultSource.IMPORT,
                )
            )
    imported = FaultLabel.objects.using(using).filter(
        source=FaultSource.IMPORT, sensor_id__in={label.sensor_id for label in labels}
    )
    before = imported.count()
    FaultLabel.objects.using(using).bulk_create(labels, ignore_conflicts=True, batch_size=1000)
    created = imported.count() - before
    report.labels_created += created
    report.labels_present += len(labels) - created


# --- holdout fault shapes -------------------------------------------------------

# Sensor metadata key: the periods of readings written by readings_holdout_append, so that staff can tell them
# from real ones. Kept out of FaultLabel on purpose: training reads fault labels, and must never see these.
HOLDOUT_MARK = "holdout_faults"


@dataclass(frozen=True)
class HoldoutAppend:
    """What ``readings_holdout_append`` wrote on one sensor: the readings' period, and the fault's (if any)."""

    sensor_id: str
    shape: str | None  # None: the sensor's normal behaviour only (a clean sensor beside the faulty ones)
    first: datetime  # first appended reading's time
    last: datetime  # last appended reading's time
    stored: int
    onset: datetime | None = None  # first affected reading's time (a gap's: the first missing one)
    end: datetime | None = None  # last affected reading's time
    crossing: datetime | None = None  # a drift's first reading outside the normal range
    magnitude: float = 0.0
    detail: dict = field(default_factory=dict)

    def as_record(self) -> dict:
        moments = {"first": self.first, "last": self.last, "onset": self.onset, "end": self.end}
        record = {name: moment.isoformat() if moment else None for name, moment in moments.items()}
        if self.crossing:
            record["crossing"] = self.crossing.isoformat()
        return {"shape": self.shape, **record, "magnitude": self.magnitude}


def readings_holdout_append(
    *,
    sensor: Sensor,
    shape: str | None,
    readings: int,
    lead: int,
    seed: int = 0,
    period: timedelta = timedelta(days=1),
    periods: int = 7,
    now: datetime | None = None,
    using: str = "default",
) -> HoldoutAppend:
    """Append ``readings`` readings to ``sensor`` after its latest one, with ``shape`` from reading ``lead`` on.

    The readings continue the sensor's normal behaviour: each is the reading of one ``period`` earlier (else
    two, ... up to ``periods``) that no fault label or shape appended earlier covers and the gateway did not
    flag (see ``readings.holdout``); ``shape`` (a ``HoldoutShape``, None for none) is laid on them from the
    ``lead``-th on. They go through ``readings_insert``, and the period is recorded in the sensor's metadata under
    HOLDOUT_MARK, never as a fault label. Readings later than now plus INGEST_MAX_FUTURE_SKEW are refused, as
    ingest refuses them: they would take the place of the sensor's real readings when these arrive.
    Raises ValueError when the sensor has no readings, too few recent normal ones, or no room for the shape.
    """
    now = now or timezone.now()
    latest = readings_shown().using(using).filter(sensor=sensor).order_by("-time").values_list("time", flat=True)
    last = latest.first()
    if last is None:
        raise ValueError(f"Sensor {sensor.sensor_id} has no readings to continue.")
    if readings < 1 or not 0 <= lead < readings:
        raise ValueError("Append at least one reading, with the onset (lead) among them.")
    interval = timedelta(seconds=sensor.sampling_interval)
    if last + interval * readings > now + settings.INGEST_MAX_FUTURE_SKEW:
        raise ValueError(
            f"{readings} readings after {sensor.sensor_id}'s latest ({last.isoformat()}) would reach into the "
            "future, where they would take the place of its real readings. Use a sensor whose readings have stopped."
        )
    since = last - period * periods
    rows = list(
        readings_shown()
        .using(using)
        .filter(sensor=sensor, time__gt=since)
        .order_by("time")
        .values_list("time", "value", "quality")
    )
    recent_times = np.array([_us(moment) for moment, _, _ in rows], dtype="datetime64[us]")
    recent_values = np.array([value for _, value, _ in rows], dtype=np.float64)
    usable = np.array([quality >= 1.0 for _, _, quality in rows], dtype=bool)
    faulty = list(FaultLabel.objects.using(using).filter(sensor=sensor, end__gt=since).values_list("start", "end"))
    # Shapes appended earlier are not normal behaviour either.
    faulty += [
        (datetime.fromisoformat(record["onset"]), datetime.fromisoformat(record["end"]))
        for record in sensor.metadata.get(HOLDOUT_MARK, [])
        if record.get("onset")
    ]
    for start, stop in faulty:
        usable &= (recent_times < _us(start)) | (recent_times > _us(stop))
    if usable.sum() < 2:
        raise ValueError(f"Sensor {sensor.sensor_id} has too few recent normal readings to continue.")

    step = np.timedelta64(sensor.sampling_interval * 1_000_000, "us")
    times = _us(last) + step * np.arange(1, readings + 1)
    base = replay(
        recent_times,
        recent_values,
        usable,
        times,
        period=np.timedelta64(int(period.total_seconds() * 1_000_000), "us"),
        periods=periods,
        tolerance=step // 2,
    )
    missing = np.isnan(base)
    if missing.mean() > 0.01:
        raise ValueError(
            f"Sensor {sensor.sensor_id} lacks normal readings at {missing.mean():.0%} of the times of day to "
            f"continue over its last {periods} periods of {period}."
        )
    if missing.any():  # a few holes in every recent day: bridged
        base[missing] = np.interp(np.flatnonzero(missing), np.flatnonzero(~missing), base[~missing])
    normal = recent_values[usable]
    lsb = resolution(normal)
    low = sensor.normal_min if sensor.normal_min is not None else float(normal.min())
    high = sensor.normal_max if sensor.normal_max is not None else float(normal.max())
    result = {"sensor_id": sensor.sensor_id, "shape": shape, "first": _aware(times[0]), "last": _aware(times[-1])}
    if shape is None:
        values, present = quantize(base, lsb), np.ones(readings, dtype=bool)
    else:
        rng = np.random.default_rng([seed, zlib.crc32(sensor.sensor_id.encode())])
        laid = lay_shape(
            shape, base, first=lead, normal_min=low, normal_max=high, sigma=noise_sigma(normal), lsb=lsb, rng=rng
        )
        values, present = laid.values, laid.present
        result.update(
            onset=_aware(times[laid.first]),
            end=_aware(times[laid.last]),
            crossing=_aware(times[laid.crossing]) if laid.crossing is not None else None,
            magnitude=laid.magnitude,
            detail=laid.detail,
        )
    batch = ReadingBatch(
        np.full(int(present.sum()), sensor.pk, dtype=np.int64),
        times[present],
        values[present],
        np.ones(int(present.sum())),
    )
    with transaction.atomic(using=using):
        stored = readings_insert(batch=batch, using=using)
        appended = HoldoutAppend(stored=stored, **result)
        records = [*sensor.metadata.get(HOLDOUT_MARK, []), appended.as_record()]
        sensor.metadata = {**sensor.metadata, HOLDOUT_MARK: records}
        sensor.save(using=using, update_fields=["metadata"])
    transaction.on_commit(lambda: latest_cache_forget([sensor.pk]), using=using)
    return appended


def _us(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.astimezone(UTC).replace(tzinfo=None), "us")

"""Writes to the readings table."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, NotSupportedError, connections, models, transaction
from django.db.models import Exists, OuterRef, QuerySet

from readings.choices import FaultSource
from readings.models import FaultLabel, Reading
from readings.selectors import latest_cache_key
from readings.synthetic import PROFILES, SensorSignal, SignalParams, readings_per_sensor, sensor_spec
from sensors.models import APIKey, Asset, Sensor

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
        touched = [latest_cache_key(pk) for pk in set(pks)]
        transaction.on_commit(lambda: cache.delete_many(touched), using=using)
    return IngestResult(accepted=accepted, duplicates=len(batch) - accepted, errors=errors)


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
        cache.delete_many([latest_cache_key(pk) for pk in pks])
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
        cache.delete_many([latest_cache_key(sensor.pk) for sensor in fleet])
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
    transaction.on_commit(lambda: cache.delete_many([latest_cache_key(pk) for pk in sensor_pks]), using=using)
    return SeedReset(deleted=deleted, revoked_keys=revoked)

"""Scoring readings with the champion model of their sensor type, loaded once per registered version."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings

from mlops import registry
from mlops.features import EPOCH, FEATURES, HISTORY_WINDOWS, build_windows, slot_of, span_of
from mlops.selectors import sensor_series
from sensors.models import Sensor

logger = logging.getLogger(__name__)


class NoChampion(Exception):
    """The sensor type has no model with the champion alias yet."""


@dataclass
class CachedModel:
    name: str
    version: str
    model: object


@dataclass
class _Entry:
    """What this process knows of one registered model's champion, and the lock of its refresh.

    One lock per model name, so that a type whose registry calls hang or whose model is loading never holds up
    another type. While fresh (MLFLOW_ALIAS_TTL after MLflow answered, MLFLOW_RETRY_AFTER after it failed) the
    entry answers alone: with ``model``, or NoChampion (``missing``), or ``error`` when no model is in memory.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    model: CachedModel | None = None
    missing: str | None = None
    error: registry.MLflowUnavailable | None = None
    checked_at: float = float("-inf")  # time.monotonic() of the last question to MLflow

    def fresh(self) -> bool:
        # Read at each call, not stored: a changed setting applies at once.
        ttl = settings.MLFLOW_RETRY_AFTER if self.error is not None else settings.MLFLOW_ALIAS_TTL
        return time.monotonic() - self.checked_at < ttl

    def answer(self) -> CachedModel:
        if self.missing is not None:
            raise NoChampion(self.missing)
        if self.model is None:
            # A new exception each time: re-raising one instance from many requests would grow its traceback.
            raise registry.MLflowUnavailable(str(self.error or "MLflow has not been asked yet"))
        return self.model


_entries: dict[str, _Entry] = {}
# Guards _entries only: held for a dictionary lookup, never across a network call or a model load.
_entries_lock = threading.Lock()


def clear_model_cache() -> None:
    with _entries_lock:
        _entries.clear()


def _entry(name: str) -> _Entry:
    with _entries_lock:
        return _entries.setdefault(name, _Entry())


def champion_model(sensor_type: str) -> CachedModel:
    """The champion of ``sensor_type``, from memory while its alias still points at the version held.

    The alias is resolved at most every MLFLOW_ALIAS_TTL seconds (one cheap registry call, and a type without
    a champion is remembered as long); the model itself is loaded only when the alias has moved. When MLflow
    cannot be asked, the champion in memory keeps serving (stale while error) and MLflow is asked again after
    MLFLOW_RETRY_AFTER seconds; only a type with no model in memory fails, with MLflowUnavailable.
    """
    name = registry.model_name(sensor_type)
    entry = _entry(name)
    if entry.fresh():
        return entry.answer()
    in_memory = entry.model
    if in_memory is None:
        entry.lock.acquire()  # nothing to serve meanwhile: wait for the request loading it (one load, not many)
    elif not entry.lock.acquire(blocking=False):
        # Another request is asking MLflow about this model: serve the version in memory rather than queue.
        return in_memory
    try:
        if entry.fresh():  # refreshed by the request this one waited for
            return entry.answer()
        return _refresh(entry, name, sensor_type)
    finally:
        entry.lock.release()


def _refresh(entry: _Entry, name: str, sensor_type: str) -> CachedModel:
    """Ask MLflow where the alias points and load that version if it is not the one in memory (under entry.lock)."""
    try:
        version = _champion_version(name, sensor_type)
        model = entry.model if entry.model and entry.model.version == version else _load(name, version)
    except NoChampion as exc:
        # The alias is gone (or never was): the model in memory must no longer serve.
        entry.model, entry.missing, entry.error = None, str(exc), None
        entry.checked_at = time.monotonic()
        raise
    except registry.MLflowUnavailable as exc:
        first_failure = entry.error is None
        entry.error, entry.missing = exc, None
        entry.checked_at = time.monotonic()
        if first_failure:  # log once per outage, not once per request
            if entry.model is not None:
                logger.warning(
                    "Cannot check the champion of %s; scoring with version %s in memory, asking again every %s s: %s",
                    name,
                    entry.model.version,
                    settings.MLFLOW_RETRY_AFTER,
                    exc,
                )
            else:
                logger.warning("Cannot load the champion of %s: %s", name, exc)
        if entry.model is None:
            raise
        return entry.model
    if entry.error is not None:
        logger.warning("MLflow answers again for %s: champion version %s", name, version)
    entry.model, entry.missing, entry.error = model, None, None
    entry.checked_at = time.monotonic()
    return model


@registry.translate_errors
def _champion_version(name: str, sensor_type: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        return str(registry.client().get_model_version_by_alias(name, registry.CHAMPION).version)
    except MlflowException as exc:
        # No registered model (RESOURCE_DOES_NOT_EXIST), or no champion alias on it (INVALID_PARAMETER_VALUE).
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise NoChampion(
                f"No champion model for {sensor_type} sensors ({name}@champion); run manage.py train_models."
            ) from exc
        raise


@registry.translate_errors
def _load(name: str, version: str) -> CachedModel:
    import mlflow.sklearn  # imported on first use: it takes about a second

    registry.configure()
    return CachedModel(name, version, mlflow.sklearn.load_model(f"models:/{name}/{version}"))


@dataclass
class ScoredWindow:
    sensor_pk: int
    start: datetime  # the window's fixed start (see mlops.features): the same window always has the same key
    end: datetime  # its last reading's time
    score: float


@dataclass
class Scoring:
    champion: CachedModel
    windows: list[ScoredWindow]
    # Per sensor that has readings from its ``since``: the start of its first window not ready yet, where the next
    # scheduled run continues (every window before it was scored, or had too few readings to score).
    scored_until: dict[int, datetime]


def _us(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.astimezone(UTC).replace(tzinfo=None), "us")


def _aware(moment: np.datetime64) -> datetime:
    return moment.astype("datetime64[us]").astype(datetime).replace(tzinfo=UTC)


def window_floor(moment: datetime, *, sensor: Sensor, window: int) -> datetime:
    """The start of the window of ``sensor`` that contains ``moment``."""
    span = span_of(sensor.sampling_interval, window)
    return _aware(EPOCH + span * int(slot_of(np.array([_us(moment)]), span)[0]))


def _first_slot(since: datetime, span: np.timedelta64) -> int:
    """The number of the first window starting at or after ``since`` (rounded up to a window boundary)."""
    return -int(slot_of(np.array([_us(since)]), -span)[0])


def lookback_starts(
    *, sensors: list[Sensor], since: dict[int, datetime], window: int
) -> tuple[list[Sensor], dict[int, datetime]]:
    """The sensors to read to score ``sensors`` from their ``since``, with how far back to read each.

    They are ``sensors`` and their peers (the other sensors of their type). Each is read back as far as its
    own sampling interval requires: HISTORY_WINDOWS of its own windows before the first window scored of its
    type, and one more, since a peer's window matched at that time may start up to two of the peer's spans
    earlier (see build_windows). An hourly sensor reads 62 of its 10-hour windows; a minutely sensor beside
    it, or of the same type elsewhere, still reads 62 of its 10-minute ones.
    """
    earliest: dict[str, np.datetime64] = {}  # per sensor type: the first window start to score of it
    for sensor in sensors:
        span = span_of(sensor.sampling_interval, window)
        begin = EPOCH + span * _first_slot(since[sensor.pk], span)
        earliest[sensor.sensor_type] = min(earliest.get(sensor.sensor_type, begin), begin)
    everyone = list(Sensor.objects.filter(sensor_type__in=list(earliest)).order_by("pk"))
    starts = {
        sensor.pk: _aware(
            earliest[sensor.sensor_type] - span_of(sensor.sampling_interval, window) * (HISTORY_WINDOWS + 1)
        )
        for sensor in everyone
    }
    return everyone, starts


def _ready_until(
    times: np.ndarray, span: np.timedelta64, first: int, until: np.datetime64, late: np.datetime64, window: int
) -> np.datetime64:
    """The start of the first window from number ``first`` on that is not ready by ``until``.

    Ready: ended by ``until``, and either all ``window`` readings are in, or it ended before ``late`` (the grace
    is over) with readings, or with none but a later reading (nothing to wait for). A window after the latest
    reading is not ready: its readings may still come (a gateway offline for an hour).
    """
    slots = slot_of(times, span)
    slots = slots[slots >= first]
    if not len(slots):
        return EPOCH + span * first
    numbers = np.arange(first, int(slots[-1]) + 2)
    counts = np.bincount(slots - first, minlength=len(numbers))
    ends = EPOCH + span * (numbers + 1)
    ready = (ends <= until) & ((counts >= window) | ((ends <= late) & ((counts > 0) | (ends <= times[-1]))))
    waiting = np.flatnonzero(~ready)
    return EPOCH + span * (first + int(waiting[0]))


def score_windows(
    *, sensors: list[Sensor], since: dict[int, datetime], until: datetime, window: int, grace: timedelta
) -> Scoring:
    """Anomaly probabilities of the ready windows of ``sensors`` (one type) from their ``since`` (by pk) to ``until``.

    A window is scored when it starts at or after its sensor's ``since`` and it and every window of the sensor
    before it are ready by ``until``: ended, and either all ``window`` readings are in or it ended more than
    ``grace`` ago (see ``_ready_until``); and each peer's windows up to its end are ready too, or it ended more
    than ``grace`` ago. Windows after the sensor's latest reading wait: readings delayed upstream (a gateway
    offline for an hour) are scored when they arrive, never skipped as empty. A
    window's features depend only on its own readings and those of its history and of its peers at its time
    (``mlops.features``), so the same windows get the same scores whatever the runs' cadence.

    What is read: see ``lookback_starts``.
    """
    champion = champion_model(sensors[0].sensor_type)
    spans = {sensor.pk: span_of(sensor.sampling_interval, window) for sensor in sensors}
    first_slot = {sensor.pk: _first_slot(since[sensor.pk], spans[sensor.pk]) for sensor in sensors}
    everyone, starts = lookback_starts(sensors=sensors, since=since, window=window)
    series = sensor_series(sensors=everyone, start=None, end=until, starts=starts)
    windows = build_windows(series, window=window)

    until_us, late_us = _us(until), _us(until - grace)
    spans_all = {sensor.pk: span_of(sensor.sampling_interval, window) for sensor in everyone}
    group_of = {sensor.pk: sensor.sensor_type for sensor in everyone}
    earliest = {}
    for sensor in sensors:
        begin = EPOCH + spans[sensor.pk] * first_slot[sensor.pk]
        earliest[sensor.sensor_type] = min(earliest.get(sensor.sensor_type, begin), begin)
    # Per series read: the start of its first window not ready yet (from the first window scored of its type).
    ready_until: dict[int, np.datetime64] = {}
    for item in series:
        span = spans_all[item.sensor_pk]
        first = first_slot.get(item.sensor_pk, int(slot_of(np.array([earliest[group_of[item.sensor_pk]]]), span)[0]))
        ready_until[item.sensor_pk] = _ready_until(item.times, span, first, until_us, late_us, window)
    peers: dict[str, list[int]] = {}  # sensor type -> its sensors with readings in the look-back (others cannot matter)
    for item in series:
        peers.setdefault(group_of[item.sensor_pk], []).append(item.sensor_pk)
    scored_until: dict[int, datetime] = {}
    bounds: dict[int, tuple[int, int]] = {}
    for sensor in sensors:
        if sensor.pk not in ready_until:
            continue
        span, first = spans[sensor.pk], first_slot[sensor.pk]
        stop = int(slot_of(np.array([ready_until[sensor.pk]]), span)[0])
        if stop <= first:
            continue
        ends = EPOCH + span * (np.arange(first, stop) + 1)
        ready = np.ones(len(ends), dtype=bool)
        # The peers at the window's time must be ready too (their readings, through the same gateway as a rule,
        # may come late alike): all their windows up to this one's end, or this one ended more than ``grace`` ago
        # (a dead peer must not stop the scoring of the others).
        for pk in peers[sensor.sensor_type]:
            if pk != sensor.pk:
                peer_span = spans_all[pk]
                matched = EPOCH + peer_span * slot_of(ends, peer_span)  # the peer's window boundary by this end
                ready &= (matched <= ready_until[pk]) | (ends <= late_us)
        waiting = np.flatnonzero(~ready)
        stop = first + (int(waiting[0]) if len(waiting) else len(ends))
        if stop > first:
            scored_until[sensor.pk] = _aware(EPOCH + span * stop)
            bounds[sensor.pk] = (first, stop)
    if not bounds or not len(windows):
        return Scoring(champion, [], scored_until)
    pks, where = np.unique(windows.sensor_pk, return_inverse=True)
    lo = np.array([bounds.get(int(pk), (0, 0))[0] for pk in pks], dtype=np.int64)[where]
    hi = np.array([bounds.get(int(pk), (0, 0))[1] for pk in pks], dtype=np.int64)[where]
    wanted = (windows.slot >= lo) & (windows.slot < hi)
    if not wanted.any():
        return Scoring(champion, [], scored_until)
    import pandas as pd

    X = pd.DataFrame(windows.X[wanted], columns=list(FEATURES))
    probabilities = champion.model.predict_proba(X)[:, 1]
    return Scoring(
        champion,
        [
            ScoredWindow(int(pk), _aware(s), _aware(e), float(p))
            for pk, s, e, p in zip(
                windows.sensor_pk[wanted], windows.slot_start[wanted], windows.end[wanted], probabilities, strict=True
            )
        ],
        scored_until,
    )

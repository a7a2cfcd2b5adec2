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
from mlops.features import BASELINE_WINDOWS, FEATURES, build_windows
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
    start: datetime
    end: datetime
    score: float


def score_windows(*, sensors: list[Sensor], start: datetime, end: datetime, window: int) -> tuple[CachedModel, list]:
    """Anomaly probabilities of the windows of ``sensors`` (one type) that start in [start, end).

    Features need the windows before ``start`` (the sensor's own baseline)
    and the other sensors of the type (peers), so both are read too.
    """
    sensor_type = sensors[0].sensor_type
    champion = champion_model(sensor_type)
    interval = max(sensor.sampling_interval for sensor in sensors)
    history = timedelta(seconds=interval * window * (BASELINE_WINDOWS + 1))
    peers = list(Sensor.objects.filter(sensor_type=sensor_type))
    series = sensor_series(sensors=peers, start=start - history, end=end)
    windows = build_windows(series, origin=start - history, window=window)
    wanted = np.isin(windows.sensor_pk, [sensor.pk for sensor in sensors]) & (
        windows.start >= np.datetime64(start.replace(tzinfo=None), "us")
    )
    if not wanted.any():
        return champion, []
    import pandas as pd

    X = pd.DataFrame(windows.X[wanted], columns=list(FEATURES))
    probabilities = champion.model.predict_proba(X)[:, 1]
    return champion, [
        ScoredWindow(
            int(pk),
            s.astype("datetime64[us]").astype(datetime).replace(tzinfo=UTC),
            e.astype("datetime64[us]").astype(datetime).replace(tzinfo=UTC),
            float(p),
        )
        for pk, s, e, p in zip(
            windows.sensor_pk[wanted], windows.start[wanted], windows.end[wanted], probabilities, strict=True
        )
    ]

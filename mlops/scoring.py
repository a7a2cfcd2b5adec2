"""Scoring readings with the champion model of their sensor type, loaded once per registered version."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings

from mlops import registry
from mlops.features import BASELINE_WINDOWS, FEATURES, build_windows
from mlops.selectors import sensor_series
from sensors.models import Sensor


class NoChampion(Exception):
    """The sensor type has no model with the champion alias yet."""


@dataclass
class CachedModel:
    name: str
    version: str
    model: object
    checked_at: float


_cache: dict[str, CachedModel] = {}
_lock = threading.Lock()


def clear_model_cache() -> None:
    with _lock:
        _cache.clear()


@registry.translate_errors
def champion_model(sensor_type: str) -> CachedModel:
    """The champion of ``sensor_type``, from the cache while its alias still points at the cached version.

    The alias is resolved at most every MLFLOW_ALIAS_TTL seconds (a cheap
    registry call); the model itself is loaded only when the alias has moved.
    """
    name = registry.model_name(sensor_type)
    with _lock:
        cached = _cache.get(name)
        if cached and time.monotonic() - cached.checked_at < settings.MLFLOW_ALIAS_TTL:
            return cached
        import mlflow  # imported on first use: it takes about a second
        from mlflow.exceptions import MlflowException

        try:
            version = registry.client().get_model_version_by_alias(name, registry.CHAMPION).version
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise NoChampion(
                    f"No champion model for {sensor_type} sensors ({name}@champion); run manage.py train_models."
                ) from exc
            raise
        if cached and cached.version == str(version):
            cached.checked_at = time.monotonic()
            return cached
        model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
        cached = _cache[name] = CachedModel(name, str(version), model, time.monotonic())
        return cached


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

"""Scoring readings with the champion model of their sensor type, loaded once per registered version."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db.models import Q

from mlops import forest, registry
from mlops.choices import UNKNOWN_DEPARTURE
from mlops.features import (
    BASELINE_WINDOWS,
    EPOCH,
    FEATURES,
    HISTORY_WINDOWS,
    Series,
    build_windows,
    slot_of,
    span_of,
    to_aware,
    to_aware_list,
    to_us,
)
from mlops.selectors import sensor_peer_groups, sensor_series
from sensors.models import Asset, Sensor

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
    return _champion(registry.model_name(sensor_type), f"{sensor_type} sensors", _load)


def normal_champion() -> CachedModel | None:
    """The champion normal-behaviour model of the fleet (its ``model`` is the fleet dict), or None if none yet."""
    try:
        return _champion(registry.normal_model_name(), "the normal behaviour of assets", _load_normal)
    except NoChampion:
        return None


def _champion(name: str, what: str, loader) -> CachedModel:
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
        return _refresh(entry, name, what, loader)
    finally:
        entry.lock.release()


def _refresh(entry: _Entry, name: str, what: str, loader) -> CachedModel:
    """Ask MLflow where the alias points and load that version if it is not the one in memory (under entry.lock)."""
    try:
        version = _champion_version(name, what)
        model = entry.model if entry.model and entry.model.version == version else loader(name, version)
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
def _champion_version(name: str, what: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        return str(registry.client().get_model_version_by_alias(name, registry.CHAMPION).version)
    except MlflowException as exc:
        # No registered model (RESOURCE_DOES_NOT_EXIST), or no champion alias on it (INVALID_PARAMETER_VALUE).
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise NoChampion(f"No champion model for {what} ({name}@champion); run manage.py train_models.") from exc
        raise


@registry.translate_errors
def _load(name: str, version: str) -> CachedModel:
    """The version's forest as arrays (``mlops.forest``), or its scikit-learn model where training logged none."""
    registry.configure()
    model = _load_forest(name, version)
    if model is None:  # a version trained before the arrays were logged beside it
        import mlflow.sklearn  # imported on first use: with skops, about 4 s

        model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    return CachedModel(name, version, model)


def _load_forest(name: str, version: str):
    """The ``mlops.forest.Forest`` logged with a registered version, or None if it has none."""
    import tempfile
    from pathlib import Path

    import mlflow.artifacts

    from mlops.forest import ARTIFACT, FILE, Forest

    root = registry.client().get_model_version_download_uri(name, version).rstrip("/")
    folder = ARTIFACT.rpartition("/")[0]
    if not any(Path(item.path).name == FILE for item in mlflow.artifacts.list_artifacts(f"{root}/{folder}")):
        return None
    with tempfile.TemporaryDirectory() as local:
        return Forest(Path(mlflow.artifacts.download_artifacts(f"{root}/{ARTIFACT}", dst_path=local)).read_bytes())


@registry.translate_errors
def _load_normal(name: str, version: str) -> CachedModel:
    return CachedModel(name, version, load_normal_fleet(name, version))


def load_normal_fleet(name: str, version: str) -> dict:
    """The fleet dict (every asset's normal model) of a registered version of the normal-behaviour model.

    Read from the JSON file the model was logged with (its pyfunc artifact ``fleet``), as the model's own
    ``load_context`` reads it, without loading the pyfunc model: that would unpickle its Python object (cloudpickle,
    from the artifact store) and import the training module, for the same dict.
    """
    import json
    import tempfile
    from pathlib import Path

    import mlflow.artifacts
    from mlflow.models import Model

    registry.configure()
    root = registry.client().get_model_version_download_uri(name, version).rstrip("/")
    with tempfile.TemporaryDirectory() as local:
        meta = Model.load(mlflow.artifacts.download_artifacts(f"{root}/MLmodel", dst_path=local))
        path = meta.flavors["python_function"]["artifacts"]["fleet"]["path"]
        return json.loads(Path(mlflow.artifacts.download_artifacts(f"{root}/{path}", dst_path=local)).read_text())


@dataclass
class ScoredWindow:
    sensor_pk: int
    start: datetime  # the window's fixed start (see mlops.features): the same window always has the same key
    end: datetime  # its last reading's time
    score: float


@dataclass
class Scoring:
    champion: CachedModel | None  # the supervised detector of the type; None when it has none (normal model only)
    windows: list[ScoredWindow]
    # Per sensor that has readings from its ``since``: the start of its first window not ready yet, where the next
    # scheduled run continues (every window before it was scored, or had too few readings to score).
    scored_until: dict[int, datetime]


def window_floor(moment: datetime, *, sensor: Sensor, window: int) -> datetime:
    """The start of the window of ``sensor`` that contains ``moment``."""
    span = span_of(sensor.sampling_interval, window)
    return to_aware(EPOCH + span * int(slot_of(np.array([to_us(moment)]), span)[0]))


@functools.lru_cache(maxsize=4096)
def _first_slot(since: datetime, span: np.timedelta64) -> int:
    """The number of the first window starting at or after ``since`` (rounded up to a window boundary).

    Remembered: a scheduled run asks it twice per sensor, nearly always with one watermark and one span."""
    return -int(slot_of(np.array([to_us(since)]), -span)[0])


def lookback_starts(
    *, sensors: list[Sensor], since: dict[int, datetime], window: int
) -> tuple[list[Sensor], dict[int, datetime]]:
    """The sensors to read to score ``sensors`` from their ``since``, with how far back to read each.

    They are ``sensors`` and their peers: the other sensors of their type in their peer group (the asset's site
    and machine model), or of their type anywhere for a sensor alone in its group (``sensor_peer_groups``).
    Each is read back as far as its own sampling interval requires: HISTORY_WINDOWS of its own windows before
    the first window scored of the sensors it serves, and one more, since a peer's window matched at that time
    may start up to two of the peer's spans earlier (see build_windows). An hourly sensor reads 62 of its
    10-hour windows; a minutely sensor beside it still reads 62 of its 10-minute ones.
    """
    fleet = run_fleet()
    groups = _run_peer_groups(sensors)
    site_of = (
        fleet[1]
        if fleet is not None
        else dict(Asset.objects.filter(pk__in={sensor.asset_id for sensor in sensors}).values_list("pk", "site"))
    )
    by_group: dict[tuple[str, str], np.datetime64] = {}  # the first window start to score in each peer group
    by_type: dict[str, np.datetime64] = {}  # ... of the sensors of a type alone in their groups (every peer)
    sites: dict[str, set[str]] = {}  # per type: the sites of its sensors in a group
    for sensor in sensors:
        span = span_of(sensor.sampling_interval, window)
        begin = EPOCH + span * _first_slot(since[sensor.pk], span)
        if groups[sensor.pk] is None:
            by_type[sensor.sensor_type] = min(by_type.get(sensor.sensor_type, begin), begin)
        else:
            key = (sensor.sensor_type, groups[sensor.pk])
            by_group[key] = min(by_group.get(key, begin), begin)
            sites.setdefault(sensor.sensor_type, set()).add(site_of[sensor.asset_id])
    # Candidates: every sensor of a type with a sensor alone in its group, else those on the groups' sites.
    if fleet is not None:  # in a scoring run: from the fleet read once, not one query per type
        candidates = [
            sensor
            for sensor in fleet[0]
            if sensor.sensor_type in by_type or site_of[sensor.asset_id] in sites.get(sensor.sensor_type, ())
        ]
    else:
        wanted = Q(sensor_type__in=list(by_type))
        for sensor_type, names in sites.items():
            wanted |= Q(sensor_type=sensor_type, asset__site__in=sorted(names))
        candidates = list(Sensor.objects.filter(wanted).order_by("pk"))
    candidate_groups = _run_peer_groups(candidates)
    everyone, starts = [], {}
    for sensor in candidates:
        group = candidate_groups[sensor.pk]
        served = [by_type.get(sensor.sensor_type), by_group.get((sensor.sensor_type, group)) if group else None]
        served = [begin for begin in served if begin is not None]
        if served:
            everyone.append(sensor)
            lookback = span_of(sensor.sampling_interval, window) * (HISTORY_WINDOWS + 1)
            starts[sensor.pk] = to_aware(min(served) - lookback)
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
    try:
        champion = champion_model(sensors[0].sensor_type)
    except NoChampion:
        # A plant without labelled faults has no supervised detector: the normal-behaviour model scores alone,
        # where it knows the sensors' assets (else there is no model for them at all: NoChampion stands).
        normal = normal_champion()
        if normal is None or not {sensor.asset.code for sensor in sensors} & set(normal.model["assets"]):
            raise
        champion = None
    spans = {sensor.pk: span_of(sensor.sampling_interval, window) for sensor in sensors}
    first_slot = {sensor.pk: _first_slot(since[sensor.pk], spans[sensor.pk]) for sensor in sensors}
    everyone, starts = lookback_starts(sensors=sensors, since=since, window=window)
    series = _run_series(sensors=everyone, starts=starts, until=until)
    windows = build_windows(series, window=window, since=first_slot)  # the features of the windows to score

    until_us, late_us = to_us(until), to_us(until - grace)
    spans_all = {sensor.pk: span_of(sensor.sampling_interval, window) for sensor in everyone}
    # Per series read: the start of its first window not ready yet (from the first window scored of those whose
    # peer it is: its own look-back start plus the HISTORY_WINDOWS + 1 windows read before it).
    ready_until: dict[int, np.datetime64] = {}
    for item in series:
        span = spans_all[item.sensor_pk]
        begin = to_us(starts[item.sensor_pk]) + span * (HISTORY_WINDOWS + 1)
        first = first_slot.get(item.sensor_pk, int(slot_of(np.array([begin]), span)[0]))
        ready_until[item.sensor_pk] = _ready_until(item.times, span, first, until_us, late_us, window)
    # The peers of each sensor scored among the series read (those without readings in the look-back cannot
    # matter): per peer scope (a peer group, or every sensor of a type) and sampling span, the two earliest
    # ready_until, so that each sensor finds its peers' earliest without its own in a few array operations.
    scopes: dict[tuple, dict[np.timedelta64, list[tuple[np.datetime64, int]]]] = {}
    for item in series:
        moment = (ready_until[item.sensor_pk], item.sensor_pk)
        for scope in ((item.sensor_type,), (item.sensor_type, item.peer_group)):
            scopes.setdefault(scope, {}).setdefault(spans_all[item.sensor_pk], []).append(moment)
    earliest = {
        scope: {span: sorted(moments)[:2] for span, moments in by_span.items()} for scope, by_span in scopes.items()
    }
    scope_of = {
        item.sensor_pk: (item.sensor_type,) if item.peer_group is None else (item.sensor_type, item.peer_group)
        for item in series
    }
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
        for peer_span, firsts in earliest[scope_of[sensor.pk]].items():
            others = [moment for moment, pk in firsts if pk != sensor.pk][:1]
            if others:
                matched = EPOCH + peer_span * slot_of(ends, peer_span)  # the peers' window boundary by this end
                ready &= (matched <= others[0]) | (ends <= late_us)
        waiting = np.flatnonzero(~ready)
        stop = first + (int(waiting[0]) if len(waiting) else len(ends))
        if stop > first:
            scored_until[sensor.pk] = to_aware(EPOCH + span * stop)
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
    probabilities = forest.probabilities(champion.model, X)[:, 1] if champion is not None else np.zeros(len(X))
    return Scoring(
        champion,
        [
            ScoredWindow(pk, start, end, p)
            for pk, start, end, p in zip(
                windows.sensor_pk[wanted].tolist(),
                to_aware_list(windows.slot_start[wanted]),
                to_aware_list(windows.end[wanted]),
                probabilities.tolist(),
                strict=True,
            )
        ],
        scored_until,
    )


# The normal model's ratio (departure over threshold) as a score on the supervised model's 0..1 scale: ratio 1.0
# (on the calibrated threshold) is 0.5, ANOMALY_THRESHOLD's default; 1.5 is 0.8, an alert; 2.1 is 0.95, critical.
_RATIO_SLOPE = math.log(4) / 0.5
SIGMA = "\N{GREEK SMALL LETTER SIGMA}"


def ratio_score(ratio: np.ndarray | float) -> np.ndarray | float:
    return 1 / (1 + np.exp(-_RATIO_SLOPE * (np.asarray(ratio, dtype=float) - 1)))


@dataclass
class NormalVerdict:
    ratio: float  # after the staff's threshold factors
    score: float
    explanation: list[dict]
    kind: str
    # The model flagged a flat run of the sensor within the supervised features' baseline (the BASELINE_WINDOWS
    # windows before this one): see mlops.services.supervised_confirmed.
    after_flat: bool = False


# Within one_run: the normal model's frame and scores of each asset scored so far in the run, by the asset, the
# model version and the range read ("frames"); the assets read so far, by pk ("assets"); the readings read so far,
# by sensor pk ("series": see _run_series); their peer groups ("groups"); the fleet ("fleet": see run_fleet).
_run_scores: contextvars.ContextVar[dict | None] = contextvars.ContextVar("scoring_run_scores", default=None)


@contextlib.contextmanager
def one_run():
    """One scoring run over several sensor types: each asset's frame is read and scored by the normal model once.

    The run scores type by type (each type has its supervised champion), and an asset carries sensors of several
    types: without this, each asset was read and scored once per type on it (four times on the seeded fleet).
    """
    token = _run_scores.set({"frames": {}, "assets": {}, "series": {}, "groups": {}, "fleet": None})
    try:
        yield
    finally:
        _run_scores.reset(token)


def run_fleet() -> tuple[list[Sensor], dict[int, str]] | None:
    """Within a scoring run (one_run), every sensor (in pk order) and the site of every asset, read once for the
    run's types: each type's look-back candidates and each asset's sensors were a query (and ~125 Sensor objects
    built) per type. None outside a run: the callers query only what they need."""
    run = _run_scores.get()
    if run is None:
        return None
    if run["fleet"] is None:
        run["fleet"] = (list(Sensor.objects.order_by("pk")), dict(Asset.objects.values_list("pk", "site")))
    return run["fleet"]


def _run_peer_groups(sensors: list[Sensor]) -> dict[int, str | None]:
    """``sensor_peer_groups``, asked once per sensor and scoring run (one_run): the fleet does not change meanwhile."""
    run = _run_scores.get()
    if run is None:
        return sensor_peer_groups(sensors)
    known = run["groups"]
    missing = [sensor for sensor in sensors if sensor.pk not in known]
    if missing:
        if run["fleet"] is not None:  # every sensor's at once (a sensor's group depends on the fleet, not the ask)
            missing = [sensor for sensor in run["fleet"][0] if sensor.pk not in known] + missing
        known.update(sensor_peer_groups(missing))
    return {sensor.pk: known[sensor.pk] for sensor in sensors}


def _run_series(
    *, sensors: list[Sensor], starts: dict[int, datetime], until: datetime, ahead: dict[int, datetime] | None = None
) -> list[Series]:
    """``sensor_series`` of ``sensors`` from their ``starts`` to ``until``, read once per scoring run (one_run).

    A sensor read earlier in the run up to the same ``until`` from as early or earlier is not read again: its
    readings from its start are taken from memory (the normal model's frames and the supervised features need
    the same sensors' recent readings; without this, a run over 1,000 sensors read 1.1 M readings for 0.6 M).
    ``ahead`` reads some sensors from earlier than asked, for a later use in the run; the series returned still
    start at ``starts``.
    """
    run = _run_scores.get()
    if run is None:
        return sensor_series(sensors=sensors, start=None, end=until, starts=starts)
    cache = run["series"]  # sensor pk -> (until, first time read, Series or None when it had no readings)
    missing = [
        sensor
        for sensor in sensors
        if sensor.pk not in cache or cache[sensor.pk][0] != until or cache[sensor.pk][1] > starts[sensor.pk]
    ]
    if missing:
        begin = {
            sensor.pk: min(starts[sensor.pk], (ahead or {}).get(sensor.pk, starts[sensor.pk])) for sensor in missing
        }
        read = sensor_series(
            sensors=missing, start=None, end=until, starts=begin, peer_groups=_run_peer_groups(missing)
        )
        read = {item.sensor_pk: item for item in read}
        for sensor in missing:
            cache[sensor.pk] = (until, begin[sensor.pk], read.get(sensor.pk))
    series = []
    for sensor in sensors:
        item = cache[sensor.pk][2]
        if item is None:
            continue
        first = int(np.searchsorted(item.times, to_us(starts[sensor.pk])))
        if first < len(item.times):
            series.append(
                item
                if first == 0
                else dataclasses.replace(
                    item, times=item.times[first:], values=item.values[first:], quality=item.quality[first:]
                )
            )
    return series


def normal_verdicts(
    *, normal: CachedModel, sensors: list[Sensor], windows: list[ScoredWindow], window: int, until: datetime
) -> dict[tuple[int, datetime], NormalVerdict]:
    """The normal-behaviour model's verdict on each of ``windows`` (of ``sensors``), by (sensor pk, start).

    Per asset with a model: its sensors' readings from the drift test's memory before the first window to the
    last one's end, one frame, one scoring pass. A window is matched to the asset's frame row ending with it.
    Sensors whose asset has no model yet (or that joined the asset after it was trained) get no verdict.
    """
    from mlops.normal import DRIFT_WINDOWS, AssetModel, asset_frames, score_assets

    fleet = normal.model
    by_pk = {sensor.pk: sensor for sensor in sensors}
    assets: dict[int, list[ScoredWindow]] = {}
    for item in windows:
        assets.setdefault(by_pk[item.sensor_pk].asset_id, []).append(item)
    verdicts = {}
    # An asset's frame scored once per scoring run (see one_run), not once per sensor type on it; the assets,
    # their sensors and their readings read at once (not three queries per asset), and only for frames not
    # scored yet in the run.
    run = _run_scores.get()
    scored = run["frames"] if run is not None else None
    asset_rows = run["assets"] if run is not None else {}
    asset_rows.update(Asset.objects.in_bulk([pk for pk in assets if pk not in asset_rows]))
    plans, wanted = [], {}
    for asset_pk, mine in assets.items():
        asset = asset_rows[asset_pk]
        entry = fleet["assets"].get(asset.code)
        if entry is None:
            continue
        longest = max(span_of(interval, window) for interval in entry["intervals"])
        first = to_aware(to_us(min(item.start for item in mine)) - longest * (DRIFT_WINDOWS + 1))
        key = (normal.name, normal.version, asset.code, first, until, window)
        if scored is None or key not in scored:
            wanted[asset_pk] = (first, set(entry["model"]["sensors"]), to_us(min(item.start for item in mine)))
        plans.append((asset, mine, entry, key))
    on_assets: dict[int, dict[str, Sensor]] = {}
    present, starts, ahead = [], {}, {}
    fleet = run_fleet()
    if not wanted:
        on_wanted = []
    elif fleet is not None:
        on_wanted = [sensor for sensor in fleet[0] if sensor.asset_id in wanted]
    else:
        on_wanted = Sensor.objects.filter(asset_id__in=list(wanted))
    for sensor in on_wanted:
        first, modelled, earliest = wanted[sensor.asset_id]
        if sensor.sensor_id in modelled:
            on_assets.setdefault(sensor.asset_id, {})[sensor.sensor_id] = sensor
            present.append(sensor)
            starts[sensor.pk] = first
            # Read as far back as scoring the sensor's own windows from the same time will (lookback_starts), so
            # that the run's pass over its type finds its readings read.
            span = span_of(sensor.sampling_interval, window)
            ahead[sensor.pk] = min(first, to_aware(earliest - span * (HISTORY_WINDOWS + 1)))
    read = _run_series(sensors=present, starts=starts, until=until, ahead=ahead) if present else []
    series = {item.sensor_pk: item for item in read}
    # Explanations (and the kind) only for windows either detector scores at ANOMALY_THRESHOLD or above: only those
    # are stored (see mlops.services._score); the others' verdicts carry the score alone.
    threshold = settings.ANOMALY_THRESHOLD
    # The frames of the assets not scored yet in the run, all scored at once (score_assets: most of a scheduled
    # run's assets have a few rows each, and scoring them one by one was mostly Python's overhead per asset).
    models, inputs = {}, []
    for asset, _mine, entry, _key in plans:
        if asset.pk not in wanted:
            continue
        model = models[asset.pk] = AssetModel(entry["model"])
        members = on_assets.get(asset.pk, {})
        frame_series = []
        for sensor_id, interval in zip(model.params["sensors"], entry["intervals"], strict=True):
            sensor = members.get(sensor_id)
            item = series.get(sensor.pk) if sensor is not None else None
            if item is None:  # no readings (or no longer on the asset): an empty column, NaN in the frame
                item = Series(0, "", interval, None, None, np.zeros(0, "datetime64[us]"), np.zeros(0), np.zeros(0))
            frame_series.append(item)
        inputs.append((frame_series, list(model.params["sensors"])))
    frames = asset_frames(inputs, window=window)
    built = {pk: (model, frame) for (pk, model), frame in zip(models.items(), frames, strict=True)}
    scorable = [pk for pk, (_model, frame) in built.items() if len(frame)]
    batch = score_assets([built[pk][0] for pk in scorable], [built[pk][1] for pk in scorable])
    batch = dict(zip(scorable, batch, strict=True))
    for asset, mine, _entry, key in plans:
        if asset.pk not in wanted:
            model, frame, scores, explained = scored[key]
        else:
            model, frame = built[asset.pk]
            scores = batch.get(asset.pk)
            explained = {}  # the asset's leading departures by frame row: its sensors share them
            if scored is not None:
                scored[key] = (model, frame, scores, explained)
        if scores is None:
            continue
        factor = max(asset.threshold_factor, 0.1)
        columns = {sensor_id: index for index, sensor_id in enumerate(model.params["sensors"])}
        limits = _own_limits(model)
        # The frame row ending with each window, all of the asset's windows at once.
        starts_us = np.array([to_us(item.start) for item in mine], dtype="datetime64[us]")
        spans_us = np.array([span_of(by_pk[item.sensor_pk].sampling_interval, window) for item in mine])
        rows = np.searchsorted(frame.slot_end, starts_us + spans_us, side="right") - 1
        for item, row, start_us, span in zip(mine, rows.tolist(), starts_us, spans_us, strict=True):
            sensor = by_pk[item.sensor_pk]
            column = columns.get(sensor.sensor_id)
            if column is None or row < 0 or frame.slot_end[row] <= start_us:
                continue
            ratio = float(scores.sensor_ratio[row, column])
            own = _own_ratio(limits, scores, row, column)
            baseline = np.searchsorted(frame.slot_end, [start_us - span * BASELINE_WINDOWS, start_us], side="right")
            after_flat = scores.flat is not None and bool(scores.flat[slice(*baseline), column].any())
            if row not in explained:
                explained[row] = model.explain(scores, row)
            explanation = explained[row]
            if own < 1 and explanation and explanation[0]["sensor"] != sensor.sensor_id:
                # Flagged only as the asset's departure (the relation between its sensors broke, or another sensor
                # led): this sensor only when it leads, so that one departure is one anomaly, not one per sensor.
                ratio = own
            ratio /= factor * max(sensor.threshold_factor, 0.1)
            score = float(ratio_score(ratio))
            if max(score, item.score) < threshold:
                verdicts[(item.sensor_pk, item.start)] = NormalVerdict(ratio, score, [], UNKNOWN_DEPARTURE, after_flat)
                continue
            kind = UNKNOWN_DEPARTURE
            if own >= 1:
                # Flagged for its own statistics: they come first in why, and say what kind of departure it is.
                tests = [test for test in model.explain(scores, row, top=64) if test["sensor"] == sensor.sensor_id]
                # A step is a level shift even as the drift test (the level summed over the last windows) grows
                # past it: the drift leads only while the level itself is still inside its band.
                limit = model.params["thresholds"]["z"]
                if any(test["feature"] != "drift" and abs(test["z"]) >= limit for test in tests):
                    tests = [test for test in tests if test["feature"] != "drift"]
                if tests:
                    explanation = (tests[:1] + [other for other in explanation if other != tests[0]])[:3]
                kind = _kind(tests[0]) if tests else UNKNOWN_DEPARTURE
            verdicts[(item.sensor_pk, item.start)] = NormalVerdict(
                ratio, score, _described(explanation, model.params), kind, after_flat
            )
    return verdicts


@dataclass
class EarlyFlat:
    """A value frozen part-way through a window that has not ended yet (see ``early_flats``)."""

    sensor_pk: int
    start: datetime  # the window's fixed start
    end: datetime  # its latest reading's time so far
    ratio: float  # after the staff's threshold factors
    score: float
    explanation: list[dict]


def early_flats(
    *, normal: CachedModel, sensors: list[Sensor], unscored: dict[int, datetime], until: datetime, window: int
) -> list[EarlyFlat]:
    """Sensors whose newest window, still open, already holds the repeated readings of a frozen value.

    A window is scored once it has ended (``score_windows``), so a value that freezes at a window's last reading
    was found only when the next window ended: a whole window later (100 s at 10 s sampling, 10 min at one
    minute). The normal model's ``repeats`` test needs only k readings equal to the one before in one window
    (``mlops.normal._fit_repeated_pairs``), and the count can only grow as the window fills: a window with k
    repeats so far will hold at least k when it ends, and its full verdict is at least this one (the sensor's
    ratio is the largest of its tests). So the newest window of each sensor (from its first window not scored
    yet, ``unscored``) is tested on the readings in so far; what this returns is stored as a provisional anomaly,
    settled by the window's full verdict (``mlops.services._provisional_settle``), which keeps the anomalies of
    any cadence equal to those of one run over the whole range. Only sensors whose asset has a normal model with
    that test (a sensor whose readings often repeat has none).
    """
    fleet = normal.model
    run = _run_scores.get()
    asset_rows = run["assets"] if run is not None else {}
    asset_rows.update(Asset.objects.in_bulk([s.asset_id for s in sensors if s.asset_id not in asset_rows]))
    plans, starts = {}, {}
    for sensor in sensors:
        asset = asset_rows.get(sensor.asset_id)
        entry = fleet["assets"].get(asset.code) if asset is not None else None
        if entry is None or sensor.pk not in unscored or sensor.sensor_id not in entry["model"]["sensors"]:
            continue
        params = entry["model"]
        column = params["sensors"].index(sensor.sensor_id)
        needed = params["flat"][column].get("pairs", 0)
        if needed > 0:
            plans[sensor.pk] = (sensor, asset, params, needed, params["flat"][column]["level"])
            # From the window before: see below.
            starts[sensor.pk] = unscored[sensor.pk] - timedelta(seconds=sensor.sampling_interval * window)
    if not plans:
        return []
    found = []
    for item in _run_series(sensors=[plan[0] for plan in plans.values()], starts=starts, until=until):
        sensor, asset, params, needed, flat_level = plans[item.sensor_pk]
        span = span_of(sensor.sampling_interval, window)
        begin = EPOCH + span * int(slot_of(item.times[-1:], span)[0])
        if begin < to_us(unscored[item.sensor_pk]):  # the newest window was scored already
            continue
        # Counted as the window's own test counts them (mlops.normal._sensor_windows): a reading equal to the one
        # before it in the same window.
        values = item.values[item.times >= begin].astype(np.float64)
        pairs = int(np.count_nonzero(np.diff(values) == 0))
        ratio = pairs / needed / (max(asset.threshold_factor, 0.1) * max(sensor.threshold_factor, 0.1))
        score = float(ratio_score(ratio))
        if ratio < 1 or score < settings.ANOMALY_THRESHOLD:
            continue
        # Not where the window before was flagged by the flat tests (its repeated readings, or flat): these repeats
        # may be the tail of that run, and the window where a flagged flat run ends is its return, which the full
        # verdict does not flag (mlops.normal._flat_returns): an early flag there would be taken back. A value that
        # stays frozen is flagged when the window ends, as the run's next flat window.
        previous = item.values[(item.times >= begin - span) & (item.times < begin)].astype(np.float64)
        if len(previous) > 1 and (
            np.count_nonzero(np.diff(previous) == 0) >= needed or float(np.std(previous)) <= flat_level
        ):
            continue
        z = round(pairs / needed * params["thresholds"]["z"], 2)
        why = [{"sensor": sensor.sensor_id, "feature": "repeats", "z": z, "deviation": float(pairs)}]
        found.append(
            EarlyFlat(sensor.pk, to_aware(begin), to_aware(item.times[-1]), ratio, score, _described(why, params))
        )
    return found


def _own_limits(model) -> np.ndarray:
    """Each of a sensor's own tests' thresholds (CONTRIBUTION_FEATURES order), to read its contributions by."""
    from mlops.normal import CONTRIBUTION_FEATURES

    thresholds = model.params["thresholds"]
    return np.array([thresholds["drift" if name == "drift" else "z"] for name in CONTRIBUTION_FEATURES])


def _own_ratio(limits: np.ndarray, scores, row: int, column: int) -> float:
    """The largest of one sensor's own statistics (its features and drift) over their thresholds at ``row``."""
    n = len(limits)
    return float((np.abs(scores.contributions[row, column * n : (column + 1) * n]) / limits).max())


# What a departure of one feature looks like, as a fault kind staff know (readings.choices.FaultKind), by sign.
_KINDS = {
    ("level", 1): "level_shift",
    ("level", -1): "level_shift",
    ("drift", 1): "drift",
    ("drift", -1): "drift",
    ("spread", 1): "noise_burst",
    ("spread", -1): "stuck",
    ("repeats", 1): "stuck",
    ("range", 1): "spike",
}


def _kind(top: dict) -> str:
    """The fault kind (readings.choices.FaultKind) a sensor's own leading departure looks like, else unknown."""
    return _KINDS.get((top["feature"], 1 if top["z"] > 0 else -1), UNKNOWN_DEPARTURE)


def _described(explanation: list[dict], params: dict) -> list[dict]:
    """Each contribution with a sentence for staff: "level 4.1 sigma above normal (+12 %)"."""
    from mlops.normal import DESCRIPTIONS, SENSOR_FEATURES

    described = []
    for item in explanation:
        # ``deviation``: the departure in the test's own sigmas (``z`` is its ratio to the threshold, rescaled).
        deviation = item.get("deviation", item["z"])
        what = DESCRIPTIONS.get(item["feature"], item["feature"])
        text = f"{what} {abs(deviation):.1f}{SIGMA} {'above' if item['z'] > 0 else 'below'} normal"
        if item["feature"] in ("level", "drift") and item["sensor"] in params["sensors"]:
            index = params["sensors"].index(item["sensor"]) * len(SENSOR_FEATURES)
            # The gradual test's sigma is the level's long-horizon band, the sudden one's its short-term band.
            scales = params.get("long_scales", params["scales"]) if item["feature"] == "drift" else params["scales"]
            centre, scale = params["centres"][index], scales[index]
            if abs(centre) > 1e-9:
                text += f" ({deviation * scale / abs(centre):+.0%})"
        described.append({**item, "text": text})
    return described

"""What normal looks like for one asset: an unsupervised model of its sensors, fitted on a baseline without labels.

Most faults in a plant have no label yet, so the supervised detectors (``mlops.training``) can only find the
kinds they were shown. This model learns each asset's normal behaviour from a baseline period and scores how
far every window departs from it, with the sensors and features that contributed most. The methods are the
classic ones of industrial condition monitoring, chosen because they need no labels, little data (SKAB gives
400 readings of baseline), explain themselves per sensor, and cost microseconds per window:

- Per sensor (univariate statistical process control on window statistics): the window's level, spread
  (log standard deviation), range and share of repeated values, each as a robust z-score against the
  baseline (median and MAD, so a few odd baseline windows do not widen the band). Level is taken after
  the hour-of-day (and day-of-week) profile learned from the baseline when the baseline is long enough and
  the profile explains the level's variance (temperature follows the day; a pump follows the shifts).
  A spread far below normal is a frozen signal (a stuck sensor with LSB dither), an exact flatline is
  caught by the repeated-value share, noise growing with the same mean by the spread.
- Drift (a moving-sum test, the finite-memory form of CUSUM): the mean level z of the last DRIFT_WINDOWS
  windows, scaled by the square root of their number, so a slow drift well inside the normal range is
  flagged hours before it crosses the range. Finite memory keeps every score a function of the window and
  its last few slots, so scoring at any cadence gives the same anomalies.
- Across the asset's sensors (multivariate statistical process monitoring, PCA with Hotelling's T² and
  the squared prediction error Q): faults show across sensors (vibration up while current and temperature
  follow, flow down while pressure rises), and a relation that breaks while each sensor stays in its
  band is caught by Q. Contributions per column are the complete decomposition of each statistic.

Each statistic's threshold is calibrated on the baseline for a target false-alarm rate (see ``calibrate``)
and every score is reported as a ratio to its threshold (1.0 = on the threshold), so they combine by max
and staff can make an asset or sensor more or less sensitive with one factor.

Everything here is numpy on arrays: no Django, no MLflow. The parameters are plain JSON (``to_json``), so a
stored model is data, never code to unpickle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlops.features import EPOCH, Series, slot_of, span_of

# Statistics of each sensor's window, in this order per sensor in an asset frame.
SENSOR_FEATURES = ("level", "spread", "range", "repeats")
# How each feature's departure is described to staff.
DESCRIPTIONS = {
    "level": "level",
    "spread": "noise",
    "range": "peak-to-peak",
    "repeats": "repeated values",
    "drift": "drift",
}
DRIFT_WINDOWS = 6
# Baseline long enough to learn a daily pattern: two days.
PROFILE_MIN_DAYS = 2
_EPS = 1e-9
_MAD = 1.4826  # MAD to standard deviation, for normal data


@dataclass
class AssetFrame:
    """One row per window slot of the asset (the span of its fastest sensor), one column per (sensor, feature).

    A slower sensor's column holds its latest window ending by the row's end (matched by time); NaN where a
    sensor has no window then.
    """

    sensors: list[str]  # the sensors' IDs, in column-group order
    slot_start: np.ndarray  # datetime64[us]
    slot_end: np.ndarray  # datetime64[us]
    X: np.ndarray  # rows x (len(sensors) * len(SENSOR_FEATURES))
    count: np.ndarray  # rows x len(sensors): readings in each sensor's matched window (0: none)

    def __len__(self) -> int:
        return len(self.slot_start)

    def column(self, sensor: int, feature: str) -> np.ndarray:
        return self.X[:, sensor * len(SENSOR_FEATURES) + SENSOR_FEATURES.index(feature)]


def _sensor_windows(series: Series, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slot numbers, features rows x SENSOR_FEATURES, reading counts) of one sensor's windows, vectorised."""
    span = span_of(series.interval, window)
    slots = slot_of(series.times, span)
    if not len(slots):
        return np.zeros(0, np.int64), np.zeros((0, len(SENSOR_FEATURES))), np.zeros(0, np.int64)
    boundaries = np.flatnonzero(np.diff(slots)) + 1
    starts = np.concatenate([[0], boundaries])
    counts = np.diff(np.concatenate([starts, [len(slots)]]))
    values = series.values.astype(np.float64)
    sums = np.add.reduceat(values, starts)
    means = sums / counts
    centred = values - np.repeat(means, counts)
    var = np.add.reduceat(centred * centred, starts) / counts
    highs = np.maximum.reduceat(values, starts)
    lows = np.minimum.reduceat(values, starts)
    same = np.concatenate([[False], np.diff(values) == 0])
    same[starts] = False  # a window's first reading repeats nothing of its own window
    repeats = np.add.reduceat(same.astype(np.float64), starts) / np.maximum(counts - 1, 1)
    features = np.column_stack([means, np.log(np.sqrt(var) + _EPS), np.log(highs - lows + _EPS), repeats])
    keep = counts >= max(2, window // 2)  # too few readings to say anything
    return slots[starts][keep], features[keep], counts[keep]


def asset_frame(series: list[Series], sensor_ids: list[str], *, window: int) -> AssetFrame:
    """The frame of one asset's sensors (``series`` and their IDs in the same order)."""
    spans = [span_of(item.interval, window) for item in series]
    per_sensor = [_sensor_windows(item, window) for item in series]
    grid_span = min(spans) if spans else np.timedelta64(1, "s")
    found = [EPOCH + span * slots for (slots, _, _), span in zip(per_sensor, spans, strict=True) if len(slots)]
    if not found:
        empty = np.zeros(0, "datetime64[us]")
        return AssetFrame(sensor_ids, empty, empty, np.zeros((0, len(series) * len(SENSOR_FEATURES))), np.zeros((0, 0)))
    first = min(slot_of(times[:1], grid_span)[0] for times in found)
    last = max(slot_of(times[-1:], grid_span)[0] for times in found)
    grid = np.arange(first, last + 1)
    slot_start = EPOCH + grid_span * grid
    slot_end = slot_start + grid_span
    X = np.full((len(grid), len(series) * len(SENSOR_FEATURES)), np.nan)
    count = np.zeros((len(grid), len(series)), dtype=np.int64)
    for i, ((slots, features, counts), span) in enumerate(zip(per_sensor, spans, strict=True)):
        if not len(slots):
            continue
        ends = EPOCH + span * (slots + 1)
        index = np.searchsorted(ends, slot_end, side="right") - 1
        ok = index >= 0
        ok[ok] &= ends[index[ok]] > slot_end[ok] - span  # the sensor's window covering this slot's end
        columns = slice(i * len(SENSOR_FEATURES), (i + 1) * len(SENSOR_FEATURES))
        X[ok, columns] = features[index[ok]]
        count[ok, i] = counts[index[ok]]
    # Rows where no sensor has a window (a gap of the whole asset) say nothing.
    rows = count.any(axis=1)
    return AssetFrame(sensor_ids, slot_start[rows], slot_end[rows], X[rows], count[rows])


def _robust(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0, 1.0
    centre = float(np.median(values))
    return centre, float(_MAD * np.median(np.abs(values - centre)))


def _hour_of_week(times: np.ndarray) -> np.ndarray:
    hours = (times - EPOCH) // np.timedelta64(1, "h")
    return ((hours + 72) % 168).astype(np.int64)  # 1970-01-01 was a Thursday: Monday 00h is hour 0


def _profile(times: np.ndarray, values: np.ndarray, *, weekly: bool) -> np.ndarray | None:
    """Median level per hour of day (24) or hour of week (168), or None when the baseline cannot teach it."""
    how = _hour_of_week(times)
    keys = how if weekly else how % 24
    size = 168 if weekly else 24
    ok = np.isfinite(values)
    profile = np.full(size, np.nan)
    for key in np.unique(keys[ok]):
        profile[key] = np.median(values[ok & (keys == key)])
    if np.isnan(profile).any():
        return None
    return profile - np.median(profile)


def _profile_of(times: np.ndarray, profile: list | None) -> np.ndarray:
    if profile is None:
        return np.zeros(len(times))
    table = np.asarray(profile)
    how = _hour_of_week(times)
    return table[how if len(table) == 168 else how % 24]


def _moving_mean(values: np.ndarray, width: int) -> np.ndarray:
    """Mean of each value and the width - 1 before it (fewer at the start), NaN taken as 0."""
    values = np.nan_to_num(values)
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - width, 0)
    return (sums[ends] - sums[starts]) / np.maximum(ends - starts, 1)


@dataclass
class AssetScores:
    """Per row of the frame: the ratio of each statistic to its threshold, and what contributed."""

    ratio: np.ndarray  # rows: max over every statistic (1.0 = on the threshold)
    sensor_ratio: np.ndarray  # rows x sensors: each sensor's own statistics and its share of the asset's
    contributions: np.ndarray  # rows x (sensors x (features + drift)): z-scores, signed
    asset_ratio: np.ndarray  # rows: T² and Q (max of the two ratios)


CONTRIBUTION_FEATURES = (*SENSOR_FEATURES, "drift")


class AssetModel:
    """The normal behaviour of one asset, fitted on a baseline of its frame."""

    def __init__(self, params: dict):
        self.params = params

    # -- fitting ---------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, frame: AssetFrame, *, false_alarm_rate: float, resolution: dict[str, float] | None = None):
        """Fit on ``frame`` (the baseline: every row taken as normal).

        ``resolution`` is each sensor's smallest step between readings (its LSB), the floor of its level scale.
        """
        if len(frame) < 8:
            raise ValueError(f"A normal model needs at least 8 baseline windows; the baseline has {len(frame)}.")
        resolution = resolution or {}
        n_features = len(SENSOR_FEATURES)
        span_days = (frame.slot_end[-1] - frame.slot_start[0]) / np.timedelta64(1, "D")
        centres, scales, profiles = [], [], []
        for i, sensor in enumerate(frame.sensors):
            for j, feature in enumerate(SENSOR_FEATURES):
                values = frame.X[:, i * n_features + j]
                profile = None
                if feature == "level" and span_days >= PROFILE_MIN_DAYS:
                    profile = _learned_profile(frame.slot_start, values, weekly=span_days >= 14)
                centre, scale = _robust(values - _profile_of(frame.slot_start, profile))
                floor = _scale_floor(feature, values, frame, i, resolution.get(sensor, 0.0))
                centres.append(centre)
                scales.append(max(scale, floor))
                profiles.append(profile)
        model = cls(
            {
                "sensors": list(frame.sensors),
                "centres": centres,
                "scales": scales,
                "profiles": [None if p is None else [round(float(v), 9) for v in p] for p in profiles],
                "false_alarm_rate": false_alarm_rate,
                "baseline_windows": len(frame),
                "baseline_start": str(frame.slot_start[0]),
                "baseline_end": str(frame.slot_end[-1]),
            }
        )
        Z = model._z(frame)
        model._fit_pca(Z)
        model.calibrate(frame)
        return model

    def _fit_pca(self, Z: np.ndarray) -> None:
        """Principal components of the baseline's level and spread z-scores (the columns that move together)."""
        columns = self._pca_columns()
        data = np.nan_to_num(Z[:, columns])
        rows, cols = data.shape
        if rows < 4 or cols < 2:
            self.params["pca"] = None
            return
        cov = np.cov(data, rowvar=False) + np.eye(cols) * 1e-6
        eigenvalues, vectors = np.linalg.eigh(cov)
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues, vectors = eigenvalues[order], vectors[:, order]
        explained = np.cumsum(eigenvalues) / max(eigenvalues.sum(), _EPS)
        k = int(min(np.searchsorted(explained, 0.9) + 1, max(1, rows // 4), cols - 1))
        self.params["pca"] = {
            "columns": columns,
            "loadings": vectors[:, :k].round(9).tolist(),
            "eigenvalues": np.maximum(eigenvalues[:k], 1e-6).round(9).tolist(),
        }

    def _pca_columns(self) -> list[int]:
        n_features = len(SENSOR_FEATURES)
        return [
            i * n_features + SENSOR_FEATURES.index(feature)
            for i in range(len(self.params["sensors"]))
            for feature in ("level", "spread")
        ]

    def calibrate(self, frame: AssetFrame) -> None:
        """Thresholds of each statistic for the target false-alarm rate on the baseline.

        A baseline is short (SKAB: 40 windows; a week of minutely readings: 1,008), so the empirical quantile of
        a rate such as 1 in 10,000 windows does not exist. The threshold is the larger of the empirical
        quantile with a margin and the quantile a Gaussian z (chi-square for T², Q) would have at that rate,
        with the Bonferroni correction for the number of columns tested: a baseline that happens to be calm
        never makes the model fire on the first ordinary bump.
        """
        stats = self._statistics(frame)
        rate = self.params["false_alarm_rate"]
        thresholds = {}
        for name, values in stats.items():
            values = values[np.isfinite(values)]
            tested = values.shape[1] if values.ndim == 2 else 1
            flat = np.abs(values).ravel() if values.ndim == 2 else values
            theoretical = _theoretical(name, rate / tested, self.params)
            empirical = float(np.quantile(flat, 1 - min(0.5, rate * 10))) * 1.5 if len(flat) else 0.0
            thresholds[name] = max(theoretical, empirical, _EPS)
        self.params["thresholds"] = thresholds

    # -- scoring ---------------------------------------------------------------------------------------------
    def _z(self, frame: AssetFrame) -> np.ndarray:
        centres = np.asarray(self.params["centres"])
        scales = np.asarray(self.params["scales"])
        profiles = self.params["profiles"]
        X = frame.X.copy()
        for column, profile in enumerate(profiles):
            if profile is not None:
                X[:, column] -= _profile_of(frame.slot_start, profile)
        return (X - centres) / scales

    def _statistics(self, frame: AssetFrame) -> dict[str, np.ndarray]:
        Z = self._z(frame)
        n_sensors, n_features = len(self.params["sensors"]), len(SENSOR_FEATURES)
        levels = Z[:, [i * n_features for i in range(n_sensors)]]
        drift = np.column_stack(
            [_moving_mean(levels[:, i], DRIFT_WINDOWS) * math.sqrt(DRIFT_WINDOWS) for i in range(n_sensors)]
        ).reshape(len(Z), n_sensors)
        stats = {"z": Z, "drift": drift}
        pca = self.params.get("pca")
        if pca is not None:
            data = np.nan_to_num(Z[:, pca["columns"]])
            P = np.asarray(pca["loadings"])
            scores = data @ P
            stats["t2"] = ((scores**2) / np.asarray(pca["eigenvalues"])).sum(axis=1)
            residual = data - scores @ P.T
            stats["q"] = (residual**2).sum(axis=1)
        return stats

    def score(self, frame: AssetFrame) -> AssetScores:
        stats = self._statistics(frame)
        thresholds = self.params["thresholds"]
        n_sensors, n_features = len(self.params["sensors"]), len(SENSOR_FEATURES)
        Z = np.nan_to_num(stats["z"])
        drift = np.nan_to_num(stats["drift"])
        z_ratio = np.abs(Z) / thresholds["z"]
        drift_ratio = np.abs(drift) / thresholds["drift"]
        sensor_ratio = np.maximum(z_ratio.reshape(len(Z), n_sensors, n_features).max(axis=2), drift_ratio)
        asset_ratio = np.zeros(len(Z))
        pca = self.params.get("pca")
        if pca is not None:
            asset_ratio = np.maximum(stats["t2"] / thresholds["t2"], stats["q"] / thresholds["q"])
            # The asset's departure is shared out to its sensors by their squared z in the PCA columns.
            share = np.zeros((len(Z), n_sensors))
            for column in pca["columns"]:
                share[:, column // n_features] += Z[:, column] ** 2
            share /= np.maximum(share.sum(axis=1, keepdims=True), _EPS)
            sensor_ratio = np.maximum(sensor_ratio, asset_ratio[:, None] * np.sqrt(share))
        contributions = np.concatenate(
            [Z.reshape(len(Z), n_sensors, n_features), drift.reshape(len(Z), n_sensors, 1)], axis=2
        ).reshape(len(Z), -1)
        ratio = np.maximum(sensor_ratio.max(axis=1) if n_sensors else 0.0, asset_ratio)
        return AssetScores(ratio, sensor_ratio, contributions, asset_ratio)

    def explain(self, scores: AssetScores, row: int, *, top: int = 3) -> list[dict]:
        """The sensors and features that departed most at ``row``, as z-scores (signed), largest first."""
        sensors = self.params["sensors"]
        n = len(CONTRIBUTION_FEATURES)
        values = scores.contributions[row]
        order = np.argsort(-np.abs(values))[:top]
        return [
            {
                "sensor": sensors[index // n],
                "feature": CONTRIBUTION_FEATURES[index % n],
                "z": round(float(values[index]), 2),
            }
            for index in order
            if abs(values[index]) > 0
        ]


def _learned_profile(times: np.ndarray, values: np.ndarray, *, weekly: bool) -> np.ndarray | None:
    """The profile when it takes at least a fifth of the level's spread away, else None (no pattern to learn)."""
    profile = _profile(times, values, weekly=weekly)
    if profile is None:
        return None
    _, before = _robust(values)
    _, after = _robust(values - _profile_of(times, profile))
    return profile if after < 0.8 * before else None


def _scale_floor(feature: str, values: np.ndarray, frame: AssetFrame, sensor: int, resolution: float) -> float:
    """The smallest scale a feature may have: a constant baseline must not make every ripple infinite."""
    if feature == "level":
        noise = np.exp(np.nanmedian(frame.column(sensor, "spread")))
        return max(resolution, noise * 0.5, 1e-6 * max(1.0, abs(float(np.nanmedian(values)))))
    if feature in ("spread", "range"):
        return 0.25  # log units: a quarter of e-fold
    return 0.05  # share of repeated readings


def _theoretical(name: str, rate: float, params: dict) -> float:
    """The threshold a Gaussian baseline would give at ``rate`` (two-sided z; chi-square for T² and Q)."""
    from statistics import NormalDist

    rate = min(max(rate, 1e-12), 0.5)
    z = NormalDist().inv_cdf(1 - rate / 2)
    if name in ("z", "drift"):
        return z
    pca = params.get("pca") or {}
    degrees = len(pca.get("eigenvalues", [])) if name == "t2" else max(1, len(pca.get("columns", [])) - 1)
    if name == "q":
        degrees = max(1, len(pca.get("columns", [])) - len(pca.get("eigenvalues", [])))
    # Wilson-Hilferty: chi-square quantile from the normal one.
    k = max(degrees, 1)
    return k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3

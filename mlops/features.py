"""Windowed features of sensor readings, shared by training and scoring.

A window is ``window`` expected readings of one sensor (aligned to the start of
the range). Its features are scale-free (divided by the width of the sensor's
normal range) and relative: to the sensor's own recent windows (level, spread,
jumps), and to the other sensors of the same type at the same time, so that a
plant-wide change (a shift starting, a load change) is not taken for a fault.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

FEATURES = (
    "level",  # window mean minus the median of the previous windows' means
    "level_vs_peers",  # the same, minus the peers' median at this time
    "change",  # window mean minus the previous window's
    "change_vs_peers",
    "level_z",  # level / the median absolute level of the previous windows (the sensor's own normal swing)
    "change_z",
    "log_spread_ratio",  # log of std / median std of the previous windows
    "slope",  # least-squares slope across the window
    "jump_ratio",  # largest step / median largest step of the previous windows
    "flat_share",  # share of consecutive equal values (a stuck sensor)...
    "flat_excess",  # ...above the sensor's usual share (coarse resolution repeats values too)
    "flagged_share",  # share of readings the gateway flagged (quality < 1)
    "min_quality",
    "out_of_range_share",
)
BASELINE_WINDOWS = 30
# Readings per window, by default.
WINDOW = 10
_EPS = 1e-6


@dataclass
class Series:
    """One sensor's readings in time order, with what the features need to know about the sensor."""

    sensor_pk: int
    sensor_type: str
    interval: int  # expected seconds between readings
    normal_min: float | None
    normal_max: float | None
    times: np.ndarray  # datetime64[us], UTC
    values: np.ndarray
    quality: np.ndarray

    @property
    def width(self) -> float:
        if self.normal_min is not None and self.normal_max is not None and self.normal_max > self.normal_min:
            return self.normal_max - self.normal_min
        spread = float(np.percentile(self.values, 95) - np.percentile(self.values, 5)) if len(self.values) else 0.0
        return spread or 1.0


@dataclass
class Windows:
    """One row per window: who, when, and the features (in FEATURES order)."""

    sensor_pk: np.ndarray
    sensor_type: np.ndarray
    start: np.ndarray  # datetime64[us]
    end: np.ndarray  # datetime64[us], last reading's time
    X: np.ndarray
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sensor_pk)

    def subset(self, mask: np.ndarray) -> Windows:
        return Windows(self.sensor_pk[mask], self.sensor_type[mask], self.start[mask], self.end[mask], self.X[mask])


def _own_windows(series: Series, origin: np.datetime64, window: int) -> list[dict]:
    span = np.timedelta64(window * series.interval * 1_000_000, "us")
    index = (series.times - origin) // span
    boundaries = np.flatnonzero(np.diff(index)) + 1
    starts = np.concatenate([[0], boundaries])
    stops = np.concatenate([boundaries, [len(index)]])
    width = series.width
    low, high = series.normal_min, series.normal_max
    rows = []
    for a, b in zip(starts, stops, strict=True):
        if b - a < max(2, window // 2):
            continue  # too few readings to say anything
        v = series.values[a:b] / width
        q = series.quality[a:b]
        steps = np.diff(v)
        x = np.arange(b - a) - (b - a - 1) / 2
        outside = np.zeros(b - a, dtype=bool)
        if low is not None:
            outside |= series.values[a:b] < low
        if high is not None:
            outside |= series.values[a:b] > high
        rows.append(
            {
                "bucket": int(index[a]),
                "start": series.times[a],
                "end": series.times[b - 1],
                "mean": float(v.mean()),
                "std": float(v.std()),
                "slope": float((v * x).sum() / (x * x).sum() * (b - a)),
                "jump": float(np.abs(steps).max()),
                "flat_share": float((steps == 0).mean()),
                "flagged_share": float((q < 1).mean()),
                "min_quality": float(q.min()),
                "out_of_range_share": float(outside.mean()),
            }
        )
    return rows


def build_windows(series: list[Series], *, origin, window: int) -> Windows:
    """Windows of every series; peers are the other series of the same type."""
    # numpy has no time zones: ours are UTC throughout.
    origin = np.datetime64(origin.replace(tzinfo=None) if hasattr(origin, "tzinfo") else origin, "us")
    per_sensor: dict[int, list[dict]] = {}
    for item in series:
        rows = _own_windows(item, origin, window)
        means = np.array([row["mean"] for row in rows])
        stds = np.array([row["std"] for row in rows])
        jumps = np.array([row["jump"] for row in rows])
        for i, row in enumerate(rows):
            lo = max(0, i - BASELINE_WINDOWS)
            history = slice(lo, i) if i else slice(0, 1)
            row["level"] = row["mean"] - float(np.median(means[history]))
            row["change"] = row["mean"] - (rows[i - 1]["mean"] if i else row["mean"])
            row["log_spread_ratio"] = float(np.log((row["std"] + _EPS) / (np.median(stds[history]) + _EPS)))
            row["jump_ratio"] = float(row["jump"] / (np.median(jumps[history]) + _EPS))
        flats = np.array([row["flat_share"] for row in rows])
        levels = np.abs([row["level"] for row in rows])
        changes = np.abs([row["change"] for row in rows])
        for i, row in enumerate(rows):
            history = slice(max(0, i - BASELINE_WINDOWS), i) if i else slice(0, 1)
            row["level_z"] = row["level"] / (float(np.median(levels[history])) + 1e-3)
            row["change_z"] = row["change"] / (float(np.median(changes[history])) + 1e-3)
            row["flat_excess"] = row["flat_share"] - float(np.median(flats[history]))
        per_sensor[item.sensor_pk] = rows

    # The same instant on the other sensors of the type: (type, bucket) -> [(pk, level, change)]
    by_time: dict[tuple[str, int], list[tuple[int, float, float]]] = defaultdict(list)
    for item in series:
        for row in per_sensor[item.sensor_pk]:
            by_time[(item.sensor_type, row["bucket"])].append((item.sensor_pk, row["level"], row["change"]))

    pks, types, starts, ends, matrix = [], [], [], [], []
    for item in series:
        for row in per_sensor[item.sensor_pk]:
            peers = [(lv, ch) for pk, lv, ch in by_time[(item.sensor_type, row["bucket"])] if pk != item.sensor_pk]
            peer_level = float(np.median([lv for lv, _ in peers])) if peers else 0.0
            peer_change = float(np.median([ch for _, ch in peers])) if peers else 0.0
            row["level_vs_peers"] = row["level"] - peer_level
            row["change_vs_peers"] = row["change"] - peer_change
            pks.append(item.sensor_pk)
            types.append(item.sensor_type)
            starts.append(row["start"])
            ends.append(row["end"])
            matrix.append([row[name] for name in FEATURES])
    return Windows(
        sensor_pk=np.array(pks, dtype=np.int64),
        sensor_type=np.array(types, dtype=object),
        start=np.array(starts, dtype="datetime64[us]"),
        end=np.array(ends, dtype="datetime64[us]"),
        X=np.array(matrix, dtype=np.float64).reshape(-1, len(FEATURES)),
    )

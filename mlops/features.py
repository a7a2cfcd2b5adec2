"""Windowed features of sensor readings, shared by training and scoring.

A window is ``window`` expected readings of one sensor, aligned to a fixed
origin (the Unix epoch: window k of a sensor covers [k x span, (k+1) x span)
with span = window x its sampling interval), so the windows never depend on the
range read or on when a run happens. Its features are scale-free (divided by the
width of the sensor's normal range) and relative: to the sensor's own previous
windows (level, spread, jumps; the previous BASELINE_WINDOWS window slots by
time, not by count, so a window's features depend only on the readings of its
last HISTORY_WINDOWS slots), and to the other sensors of the same asset at the
same time (a load change of the machine moves them together and is not taken
for a fault).
"""

from __future__ import annotations

import warnings
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
# Window slots a window's features depend on, itself included: its baseline is the previous BASELINE_WINDOWS
# slots, and level_z compares its level with those windows' own levels (each against the BASELINE_WINDOWS before
# it). Reading this many slots before the first window to score gives exactly the features of one run over all.
HISTORY_WINDOWS = 2 * BASELINE_WINDOWS + 1
# The fixed origin of every sensor's windows.
EPOCH = np.datetime64("1970-01-01T00:00:00", "us")
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
    asset_pk: int | None = None

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
    start: np.ndarray  # datetime64[us], first reading's time
    end: np.ndarray  # datetime64[us], last reading's time
    X: np.ndarray
    slot: np.ndarray = None  # int64: the window's number k from EPOCH (its span is the sensor's own)
    slot_start: np.ndarray = None  # datetime64[us]: EPOCH + k x span, the window's fixed start
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sensor_pk)

    def subset(self, mask: np.ndarray) -> Windows:
        return Windows(
            self.sensor_pk[mask],
            self.sensor_type[mask],
            self.start[mask],
            self.end[mask],
            self.X[mask],
            self.slot[mask],
            self.slot_start[mask],
        )


def span_of(interval: int, window: int) -> np.timedelta64:
    """The length of one window of a sensor sampled every ``interval`` seconds."""
    return np.timedelta64(window * interval * 1_000_000, "us")


def slot_of(times: np.ndarray, span: np.timedelta64) -> np.ndarray:
    """The window number of each time (datetime64[us]); floor division, so times before 1970 work too."""
    return (times - EPOCH) // span


def _own_windows(series: Series, window: int) -> list[dict]:
    span = span_of(series.interval, window)
    index = slot_of(series.times, span)
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
                "slot_start": EPOCH + span * int(index[a]),
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


def _baseline_median(values: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Per row i: the median of ``values[lo[i]:i]`` (its baseline rows), or ``values[i]`` where that is empty.

    All rows at once: a row's baseline is at most BASELINE_WINDOWS rows (one window per slot), so the
    baselines fit one (rows x BASELINE_WINDOWS) matrix, sorted per row with the unused cells last.
    """
    n = len(values)
    rows = np.arange(n)
    index = rows[:, None] + np.arange(-BASELINE_WINDOWS, 0)[None, :]
    used = index >= lo[:, None]
    empty = ~used.any(axis=1)
    used[empty, -1] = True  # the row itself stands in for a missing baseline
    index[empty, -1] = rows[empty]
    matrix = np.where(used, values[np.clip(index, 0, None)], np.inf)
    matrix.sort(axis=1)
    count = used.sum(axis=1)
    return (matrix[rows, (count - 1) // 2] + matrix[rows, count // 2]) / 2


def build_windows(series: list[Series], *, window: int) -> Windows:
    """Windows of every series; peers are the other series of the same sensor type, matched by time."""
    per_sensor: dict[int, list[dict]] = {}
    for item in series:
        rows = _own_windows(item, window)
        if not rows:
            per_sensor[item.sensor_pk] = rows
            continue
        buckets = np.array([row["bucket"] for row in rows], dtype=np.int64)
        # The baseline of a window: the windows of the previous BASELINE_WINDOWS slots (by time: a gap shortens it).
        lo = np.searchsorted(buckets, buckets - BASELINE_WINDOWS, side="left")
        has_history = lo < np.arange(len(rows))
        means = np.array([row["mean"] for row in rows])
        stds = np.array([row["std"] for row in rows])
        jumps = np.array([row["jump"] for row in rows])
        flats = np.array([row["flat_share"] for row in rows])
        level = means - _baseline_median(means, lo)
        # From the latest window of the baseline period (none: no change to speak of).
        change = np.where(has_history, means - np.concatenate([means[:1], means[:-1]]), 0.0)
        log_spread = np.log((stds + _EPS) / (_baseline_median(stds, lo) + _EPS))
        jump_ratio = jumps / (_baseline_median(jumps, lo) + _EPS)
        level_z = level / (_baseline_median(np.abs(level), lo) + 1e-3)
        change_z = change / (_baseline_median(np.abs(change), lo) + 1e-3)
        flat_excess = flats - _baseline_median(flats, lo)
        for i, row in enumerate(rows):
            row["level"] = float(level[i])
            row["change"] = float(change[i])
            row["log_spread_ratio"] = float(log_spread[i])
            row["jump_ratio"] = float(jump_ratio[i])
            row["level_z"] = float(level_z[i])
            row["change_z"] = float(change_z[i])
            row["flat_excess"] = float(flat_excess[i])
        per_sensor[item.sensor_pk] = rows

    # Peers: the other sensors of the same type, each taken at this window's time: the peer's latest window
    # ending by this window's end and no more than one window (the longer of the two spans) before it. Peers may
    # sample at different rates, so windows are matched by their fixed time range, not by number.
    # Why the type and not the asset: the peer features compare levels in the sensor's own unit, so only
    # sensors of one kind can be compared; with the other sensors of the same asset (amperes against degrees),
    # a plant-wide load change (a shift ending) looked like a fault, and current and flow fell from F1 1.0 to
    # 0.67 on the default fleet (measured). Behaviour across an asset's sensors is for a model of the asset.
    ends: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.timedelta64]] = {}
    for item in series:
        rows = per_sensor[item.sensor_pk]
        span = span_of(item.interval, window)
        ends[item.sensor_pk] = (
            np.array([row["slot_start"] + span for row in rows], dtype="datetime64[us]"),
            np.array([row["level"] for row in rows]),
            np.array([row["change"] for row in rows]),
            span,
        )
    by_type: dict[str, list[Series]] = defaultdict(list)
    for item in series:
        by_type[item.sensor_type].append(item)

    pks, types, starts, stops, slots, slot_starts, matrix = [], [], [], [], [], [], []
    for item in series:
        rows = per_sensor[item.sensor_pk]
        if not rows:
            continue
        own_ends, _, _, own_span = ends[item.sensor_pk]
        peer_levels = np.full((len(rows), 0), np.nan)
        peer_changes = np.full((len(rows), 0), np.nan)
        for peer in by_type[item.sensor_type]:
            if peer.sensor_pk == item.sensor_pk or not per_sensor[peer.sensor_pk]:
                continue
            peer_ends, levels, changes, peer_span = ends[peer.sensor_pk]
            index = np.searchsorted(peer_ends, own_ends, side="right") - 1
            found = index >= 0
            found[found] &= peer_ends[index[found]] > own_ends[found] - max(own_span, peer_span)
            column = np.where(found, levels[np.maximum(index, 0)], np.nan)
            peer_levels = np.column_stack([peer_levels, column])
            peer_changes = np.column_stack([peer_changes, np.where(found, changes[np.maximum(index, 0)], np.nan)])
        peer_level = _nanmedian_rows(peer_levels)
        peer_change = _nanmedian_rows(peer_changes)
        for i, row in enumerate(rows):
            row["level_vs_peers"] = row["level"] - peer_level[i]
            row["change_vs_peers"] = row["change"] - peer_change[i]
            pks.append(item.sensor_pk)
            types.append(item.sensor_type)
            starts.append(row["start"])
            stops.append(row["end"])
            slots.append(row["bucket"])
            slot_starts.append(row["slot_start"])
            matrix.append([row[name] for name in FEATURES])
    return Windows(
        sensor_pk=np.array(pks, dtype=np.int64),
        sensor_type=np.array(types, dtype=object),
        start=np.array(starts, dtype="datetime64[us]"),
        end=np.array(stops, dtype="datetime64[us]"),
        X=np.array(matrix, dtype=np.float64).reshape(-1, len(FEATURES)),
        slot=np.array(slots, dtype=np.int64),
        slot_start=np.array(slot_starts, dtype="datetime64[us]"),
    )


def _nanmedian_rows(values: np.ndarray) -> np.ndarray:
    """The median of each row's known values; 0 where a row has none (no peer at that time)."""
    if not values.shape[1]:
        return np.zeros(len(values))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": a time without peers
        return np.nan_to_num(np.nanmedian(values, axis=1), nan=0.0)

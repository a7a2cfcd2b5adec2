"""What normal looks like for one asset: an unsupervised model of its sensors, fitted on a baseline without labels.

Most faults in a plant have no label yet, so the supervised detectors (``mlops.training``) can only find the
kinds they were shown. This model learns each asset's normal behaviour from a baseline period and scores how far
every window departs from it, with the sensors and tests that contributed most. The methods are those of
statistical process monitoring, chosen because they need no labels and little data (SKAB gives 400 readings of
baseline, a plant weeks), explain themselves per sensor and cost microseconds per window. Each window is
described by its sensors' statistics (``SENSOR_FEATURES``: mean level, log standard deviation, log peak-to-peak,
share of repeated readings), the level after the daily (weekly) profile where the baseline shows one, and tested
five ways per sensor (``CONTRIBUTION_FEATURES``) and twice across the asset:

- ``level``, **an abrupt departure, held until it returns**. A level that moved away from normal faster than the
  baseline says it can is a departure: its move over the last 1 to ``MOVE_LAGS`` windows is compared with the
  baseline's own moves at that lag (robust variogram, sqrt(2 gamma(lag))), and must also exceed ``MOVE_LONG`` of
  the long-horizon band below (a smooth signal calm during a short baseline is not judged on that calm alone).
  Once triggered, the window is flagged while its level stays outside the short-term band (median and MAD of the
  baseline's window means, never below the noise of a mean of the window's readings), until the level moves back
  towards normal, and at most ``HOLD_WINDOWS`` after the last trigger. This finds a valve closing (flow down a few
  per cent for minutes) without flagging a temperature that wanders: the wander never moves faster than it did
  in the baseline; the fault does, then stays. Why: the baseline of a slow process is too short to say where its
  level may be in an hour, but it does say how fast the level moves.
- ``drift``, **a gradual departure**: the level against the long-horizon band, what the level may reach over
  the time the model is used rather than over the baseline alone. The band is the baseline's robust variogram
  fitted as a power law on its longer lags and extrapolated to ``HORIZON`` times the baseline's length (exponent
  0 for white noise, at most 1, a random walk), widened where the baseline's tail is heavier than a Gaussian's
  and by the prediction-interval factor of n_eff independent windows (Student's t over the normal quantile at the
  test's rate, times sqrt(1 + 1/n_eff), n_eff = n (1 - rho) / (1 + rho) from the lag-one autocorrelation; at most
  ``T_FACTOR_MAX``). Weeks of baseline give a band close to the baseline's own spread and a drift inside the
  normal range is flagged as it leaves the band, before it crosses the range; 400 seconds of a slow signal give a
  wide band. A false gradual departure lasts about the level's persistence (1 + rho) / (1 - rho) windows, so its
  threshold is taken at the per-window rate divided by that.
- ``spread`` and ``range``: noise growing with the same mean, intermittent spikes, as robust z-scores of the log
  standard deviation and log peak-to-peak (scale at least a quarter of an e-fold, widened like the band). Values
  below half the baseline's typical count as half: a quantised sensor (flow in whole units) often reads one value
  for a window, normal for it; a stuck sensor is ``repeats``' to find. A new fast oscillation moves the level
  between windows: the median, over the last ``ROUGH_WINDOWS`` windows, of the squared moves in units of the
  baseline's typical move is tested too (binomial on chi-square(1): most of the windows' moves beyond a limit),
  except while a departure is returning to normal, and reported as ``spread``.
- ``repeats``, **a flat run**: a window is flat when all its readings are equal or their standard deviation is
  below ``FLAT_SHARE`` of the typical one or one resolution step (not above half the typical: a coarse sensor's
  normal windows), which covers an exact flatline and a frozen value with +-1 LSB of dither. From the baseline, a
  window's chance p to be flat (Laplace's estimate, at least the chance of ten repeats given the baseline's share
  of repeated readings: quantised sensors repeat); R flat windows in a row with p^R below the test's rate are a
  departure. A sensor so often flat that R would exceed ``FLAT_MAX_RUN`` has no such test. A value frozen
  part-way through a window is found in that window where the sensor's readings hardly ever repeat: k repeated
  readings in one window, k unlikely by the baseline's share of repeats (binomial) and above any baseline window's.
  The window in which a flagged flat run ends, with no level departure held, is its return, not a departure: its
  statistics mix the run's last readings with the step back to the sensor's level, so it has no test of its own
  and its level counts at the centre in T² and Q; the next window is tested in full. A sensor that stays away
  from normal (a level still held: a closed valve's flow, flat now and then) is tested as before.
- **across the asset's sensors**: PCA of the correlation of the long-band z-scores of the levels (a flow, a
  pressure and a current move together; their spreads hardly do, and only dilute Q), Hotelling's T² and the
  squared prediction error Q, for a relation that breaks while each sensor stays in its band. Thresholds are
  the usual chi-square approximations (Wilson-Hilferty; Q as g chi-square(h), Box) times how much larger T² and
  Q are on a held-out half of the baseline than on the half the components were fitted on (a short baseline
  fits its own noise: 40 windows of 8 columns). The departure is shared out to the sensors by their squared
  z-scores.

Thresholds: the per-window false-alarm rate (``false_alarm_rate``) is shared by Bonferroni among the 5 tests of
every sensor; T is the two-sided Gaussian quantile at that rate per test. The abrupt test triggers at
``MOVE_FACTOR`` x T baseline moves and holds at ``HOLD_FACTOR`` x T short-term sigmas, released by a move back of
``RETURN_FACTOR`` x T: a departure confirmed by its move is followed down to a lower level, as an alarm's deadband
does. Each test is reported as a ratio to its threshold (1.0 = on it), so they combine by max and staff make an
asset or a sensor more or less sensitive with one factor. ``explain`` names the sensors and tests with the largest
ratios, each with ``z`` (ratio x T, signed: comparable with ``thresholds["z"]``) and ``deviation`` (the departure
in its own scale's sigmas: the level's in its short-term band, so deviation x scale is the change in the
sensor's unit).

Finite memory: a window's scores depend on it and the ``MEMORY_WINDOWS`` window slots before it (by time), so
scoring at any cadence with that much history gives the same anomalies.

The factors (MOVE_FACTOR, HOLD_FACTOR, RETURN_FACTOR, MOVE_LONG, MOVE_LAGS, HOLD_WINDOWS) are global defaults,
chosen on SKAB (34 experiments of a real pump, labels used only to score) where the abrupt test does the work,
in a region where neighbouring values score within a point or two; the other parts follow from the baseline and
the false-alarm rate. See docs/mlops.md ("The normal-behaviour model") for the measured figures.

Numpy on arrays (scipy for quantiles when fitting): no Django, no MLflow. The parameters are plain JSON, so a
stored model is data, never code to unpickle; they carry the settings they were fitted with (``settings``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from mlops.features import EPOCH, Series, slot_of, span_of

# Statistics of each sensor's window, in this order per sensor in an asset frame.
SENSOR_FEATURES = ("level", "spread", "range", "repeats")
# The per-sensor tests, in this order per sensor in ``AssetScores.contributions``.
CONTRIBUTION_FEATURES = (*SENSOR_FEATURES, "drift")
# How each test's departure is described to staff.
DESCRIPTIONS = {
    "level": "level",
    "spread": "noise",
    "range": "peak-to-peak",
    "repeats": "flat readings",
    "drift": "drift",
}
VERSION = 2
# The abrupt-departure test: moves over 1..MOVE_LAGS windows, held at most HOLD_WINDOWS after the last one.
MOVE_LAGS = 20
HOLD_WINDOWS = 40
MOVE_FACTOR = 0.85  # trigger: a move of MOVE_FACTOR x T baseline moves at that lag
HOLD_FACTOR = 0.85  # hold while the level is HOLD_FACTOR x T short-term sigmas away
RETURN_FACTOR = 0.8  # released by a move back towards normal of RETURN_FACTOR x T
MOVE_LONG = 0.5  # a move counts only beyond this share of the long-horizon band too
# The long-horizon band: the variogram extrapolated to HORIZON x the baseline's length, exponent at most ALPHA_MAX;
# the prediction-interval factor at most T_FACTOR_MAX; a false gradual departure lasting at most PERSISTENCE_MAX.
HORIZON = 2.0
ALPHA_MAX = 1.0
T_FACTOR_MAX = 10.0
PERSISTENCE_MAX = 100.0
# Spread and range: values below LOW_CLIP x the baseline's typical count as LOW_CLIP x typical.
LOW_CLIP = 0.5
SPREAD_FLOOR = 0.25  # log units: a quarter of an e-fold (the sampling spread of a 10-reading window's log sd)
# Roughness: the level's moves between windows over the last ROUGH_WINDOWS slots (a new fast oscillation).
ROUGH_WINDOWS = 5
# Flat runs.
FLAT_SHARE = 0.02
FLAT_MAX_RUN = 12
# T² and Q: across the sensors' levels (their relations are the physical ones: flow, pressure and current of a pump).
PCA_FEATURES = ("level",)
# Window slots of history a window's scores depend on (read that many before the first window to score).
MEMORY_WINDOWS = MOVE_LAGS + HOLD_WINDOWS
DRIFT_WINDOWS = MEMORY_WINDOWS  # the name the scoring code reads the memory by
# Baseline long enough to learn a daily pattern: two days (a weekly one: four weeks); the pattern is kept only if
# it explains days it was not learned from (see _learned_profile).
PROFILE_MIN_DAYS = 2
PROFILE_WEEKLY_DAYS = 28
_EPS = 1e-9
_MAD = 1.4826  # MAD to standard deviation, for normal data
_CHI2_MEDIAN_1 = 0.454936  # median of chi-square with 1 degree of freedom


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


def _sensor_windows(series: list[Series], window: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per series: (slot numbers, features rows x SENSOR_FEATURES, reading counts) of its windows.

    Vectorised across the series of one window span (one pass over their readings laid end to end): a run scores
    hundreds of assets of a few sensors each, and a pass per sensor was mostly Python's overhead."""
    empty = (np.zeros(0, np.int64), np.zeros((0, len(SENSOR_FEATURES))), np.zeros(0, np.int64))
    found: list = [empty] * len(series)
    by_span: dict[np.timedelta64, list[int]] = {}
    for index, item in enumerate(series):
        if len(item.times):
            by_span.setdefault(span_of(item.interval, window), []).append(index)
    for span, members in by_span.items():
        lengths = np.array([len(series[index].times) for index in members])
        owner = np.repeat(np.arange(len(members)), lengths)
        slots = slot_of(np.concatenate([series[index].times for index in members]), span)
        values = np.concatenate([series[index].values for index in members]).astype(np.float64)
        # A window starts where the slot or the series changes.
        change = np.ones(len(slots), bool)
        change[1:] = (slots[1:] != slots[:-1]) | (owner[1:] != owner[:-1])
        starts = np.flatnonzero(change)
        counts = np.diff(np.append(starts, len(slots)))
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
        kept_owner, kept_slots = owner[starts][keep], slots[starts][keep]
        features, counts = features[keep], counts[keep]
        bounds = np.searchsorted(kept_owner, np.arange(len(members) + 1))
        for k, index in enumerate(members):
            mine = slice(bounds[k], bounds[k + 1])
            found[index] = (kept_slots[mine], features[mine], counts[mine])
    return found


def asset_frame(series: list[Series], sensor_ids: list[str], *, window: int) -> AssetFrame:
    """The frame of one asset's sensors (``series`` and their IDs in the same order)."""
    return asset_frames([(series, sensor_ids)], window=window)[0]


def asset_frames(assets: list[tuple[list[Series], list[str]]], *, window: int) -> list[AssetFrame]:
    """``asset_frame`` of each asset, (series, sensor IDs), their windows computed together."""
    windows = iter(_sensor_windows([item for series, _ in assets for item in series], window))
    return [_frame(series, sensor_ids, [next(windows) for _ in series], window) for series, sensor_ids in assets]


def _frame(series: list[Series], sensor_ids: list[str], per_sensor: list, window: int) -> AssetFrame:
    spans = [span_of(item.interval, window) for item in series]
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
        if span == grid_span:  # on the grid itself: each window is the row of its own slot
            index = slots - first
            columns = slice(i * len(SENSOR_FEATURES), (i + 1) * len(SENSOR_FEATURES))
            X[index, columns] = features
            count[index, i] = counts
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


# -- robust statistics on window series ----------------------------------------------------------------------


def _robust(values: np.ndarray) -> tuple[float, float]:
    """(median, MAD as a standard deviation) of the finite values; (0, 0) without any."""
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0, 0.0
    centre = float(np.median(values))
    return centre, float(_MAD * np.median(np.abs(values - centre)))


def _slots(frame: AssetFrame) -> np.ndarray:
    """Each row's window slot number (rows are in time order; slots may have gaps)."""
    if not len(frame):
        return np.zeros(0, np.int64)
    span = frame.slot_end[0] - frame.slot_start[0]
    return ((frame.slot_start - EPOCH) // span).astype(np.int64)


def _dense(values: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` on the gapless slot grid from the first slot (NaN where no row), and each row's position."""
    if not len(slots):
        return np.zeros(0), np.zeros(0, np.int64)
    position = (slots - slots[0]).astype(np.int64)
    dense = np.full(int(position[-1]) + 1, np.nan)
    dense[position] = values
    return dense, position


def _semivariogram(dense: np.ndarray, lag: int) -> float:
    """Robust semivariogram at ``lag`` slots: median of squared differences over that of chi-square(1), halved."""
    if lag >= len(dense):
        return float("nan")
    differences = dense[lag:] - dense[:-lag]
    differences = differences[np.isfinite(differences)]
    if len(differences) < 6:
        return float("nan")
    return float(np.median(differences * differences)) / (2 * _CHI2_MEDIAN_1)


def _horizon_scale(values: np.ndarray, slots: np.ndarray) -> float:
    """The spread the series may show over HORIZON x the baseline's length: its robust variogram, fitted as a
    power law on the upper three quarters of the lags the baseline can tell (up to half its length), extrapolated
    (exponent between 0, white noise, and ALPHA_MAX)."""
    ok = np.isfinite(values)
    if ok.sum() < 8:
        return 0.0
    dense, _ = _dense(values[ok], slots[ok])
    top_lag = max(1, len(dense) // 2)
    lags, gammas = [], []
    for lag in np.unique(np.round(np.geomspace(1, top_lag, 16)).astype(int)):
        gamma = _semivariogram(dense, int(lag))
        if np.isfinite(gamma):
            lags.append(float(lag))
            gammas.append(gamma)
    if not gammas:
        return 0.0
    lags, gammas = np.array(lags), np.array(gammas)
    top, alpha = float(gammas[-1]), 0.0
    fit = (lags >= lags[-1] / 4) & (gammas > 0)
    if fit.sum() >= 3:
        slope, intercept = np.polyfit(np.log(lags[fit]), np.log(gammas[fit]), 1)
        alpha, top = float(slope), float(np.exp(intercept + slope * np.log(lags[-1])))
    alpha = min(max(alpha, 0.0), ALPHA_MAX)
    return math.sqrt(max(top, 0.0) * (max(HORIZON * len(dense), lags[-1]) / lags[-1]) ** alpha)


def _lag_one(values: np.ndarray, slots: np.ndarray) -> float:
    """Lag-one autocorrelation of the series (adjacent slots only), clipped to [0, 0.999]."""
    ok = np.isfinite(values)
    values, slots = values[ok], slots[ok]
    pairs = np.flatnonzero(np.diff(slots) == 1)
    if len(values) < 4 or len(pairs) < 3:
        return 0.0
    centred = values - np.median(values)
    variance = float(np.mean(centred * centred))
    if variance <= 0:
        return 0.0
    return min(max(float(np.mean(centred[pairs] * centred[pairs + 1])) / variance, 0.0), 0.999)


def _t_factor(values: np.ndarray, slots: np.ndarray, rate: float) -> float:
    """How much wider a prediction interval at two-sided ``rate`` is from this baseline than from a known Gaussian:
    Student's t with n_eff - 1 degrees of freedom over the normal quantile, times sqrt(1 + 1/n_eff)."""
    from scipy.stats import norm, t

    rho = _lag_one(values, slots)
    n_eff = max(2.0, float(np.isfinite(values).sum()) * (1 - rho) / (1 + rho))
    rate = min(max(rate, 1e-15), 0.5)
    factor = float(t.ppf(1 - rate / 2, n_eff - 1) / norm.ppf(1 - rate / 2)) * math.sqrt(1 + 1 / n_eff)
    return min(max(factor, 1.0), T_FACTOR_MAX)


def _tail_factor(z: np.ndarray) -> float:
    """At least 1: how much heavier the baseline's tail (95th percentile of |z|) is than a Gaussian's."""
    z = np.abs(z[np.isfinite(z)])
    return max(1.0, float(np.quantile(z, 0.95)) / 1.96) if len(z) else 1.0


# -- daily and weekly profile ----------------------------------------------------------------------------------


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


def _profile_of(times: np.ndarray, profile: dict | None) -> np.ndarray:
    """The profile's value at each time: its hour's median, or (``linear``) linear between the hours' medians
    taken at the middle of each hour, so a smooth daily swing leaves no saw-tooth of hourly steps."""
    if profile is None:
        return np.zeros(len(times))
    table = np.asarray(profile["hours"])
    size = len(table)
    if not profile["linear"]:
        how = _hour_of_week(times)
        return table[how if size == 168 else how % 24]
    position = np.mod((times - EPOCH) / np.timedelta64(1, "h") + 72 - 0.5, size)  # Monday 00:30 is 0
    below = np.floor(position).astype(np.int64)
    weight = position - below
    return table[below % size] * (1 - weight) + table[(below + 1) % size] * weight


def _learned_profile(times: np.ndarray, values: np.ndarray, *, weekly: bool) -> tuple[dict | None, np.ndarray]:
    """(profile, cross-fitted profile values) when a daily (weekly) pattern explains the level on days it was not
    learned from, else (None, zeros).

    The baseline's days (weeks) are split into every other one; a profile learned on one half must take at least
    a fifth of the level's spread away on the other, both ways round, as hourly steps or linear between hours
    (whichever explains more). The values returned are, at each baseline time, the profile learned on the other
    half: residuals from them show how well the profile will do on new days (a profile learned on two or three
    days also holds some of their wander, which its own residuals would hide)."""
    none = (None, np.zeros(len(times)))
    table = _profile(times, values, weekly=weekly)
    if table is None:
        return none
    period = np.timedelta64(7 if weekly else 1, "D")
    parity = ((times - EPOCH) // period) % 2
    halves = []
    for half in (0, 1):
        learned = _profile(times[parity == half], values[parity == half], weekly=weekly)
        if learned is None or not (parity != half).any():
            return none
        halves.append(learned)
    best = None
    for linear in (False, True):
        crossed = np.zeros(len(times))
        gains = []
        for half in (0, 1):
            other = parity != half
            crossed[other] = _profile_of(times[other], {"hours": halves[half], "linear": linear})
            _, before = _robust(values[other])
            _, after = _robust(values[other] - crossed[other])
            gains.append(after / before if before > 0 else 1.0)
        if max(gains) < 0.8 and (best is None or max(gains) < best[0]):
            best = (max(gains), linear, crossed)
    if best is None:
        return none
    return {"hours": [round(float(v), 9) for v in table], "linear": best[1]}, best[2]


# -- scores --------------------------------------------------------------------------------------------------


@dataclass
class AssetScores:
    """Per row of the frame: the ratio of each statistic to its threshold, and what contributed."""

    ratio: np.ndarray  # rows: max over every statistic (1.0 = on the threshold)
    sensor_ratio: np.ndarray  # rows x sensors: each sensor's own statistics and its share of the asset's
    contributions: np.ndarray  # rows x (sensors x CONTRIBUTION_FEATURES): signed ratio x thresholds["z"]
    asset_ratio: np.ndarray  # rows: T² and Q (max of the two ratios)
    own_ratio: np.ndarray | None = None  # rows x sensors: each sensor's own statistics only
    deviations: np.ndarray | None = None  # like contributions: the departure in its own scale's sigmas
    flat: np.ndarray | None = None  # rows x sensors: the flat test over its threshold (a flat departure)


def _roughness(dense: np.ndarray, steps: np.ndarray, windows: int) -> np.ndarray:
    """Per slot of ``dense`` (slots x columns, NaN where a column has no row), the median over the last ``windows``
    slots of the level's squared moves between adjacent slots, in units of each column's typical move ``steps``;
    unknown moves count as 0. The median, so that one step (a level shift, or its end) is not roughness: a new
    oscillation moves the level in most windows."""
    moves = np.full(dense.shape, np.nan)
    moves[1:] = (dense[1:] - dense[:-1]) / steps
    values = np.nan_to_num(moves * moves)
    squares = np.zeros((*dense.shape, windows))
    for lag in range(windows):
        squares[lag:, :, lag] = values[: len(dense) - lag]
    return np.median(squares, axis=2)


def _held(dense: np.ndarray, moves: np.ndarray, settings: dict, threshold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per slot and column: whether an abrupt departure holds, and whether the level moved back within
    ROUGH_WINDOWS slots.

    A departure holds after a move away from normal of ``move_factor`` x T (in units of the baseline's moves at
    that lag, 1 to len(moves) slots) within the last ``hold_windows`` slots, not followed by a move back of
    ``return_factor`` x T. ``dense`` is |level - centre| per slot (slots x columns; NaN where a column has no row),
    ``moves`` the baseline's moves per lag and column (lags x columns), in the same unit; ``threshold`` per column."""
    size = len(dense)
    rise = np.zeros(dense.shape, bool)
    fall = np.zeros(dense.shape, bool)
    up, down = settings["move_factor"] * threshold, settings["return_factor"] * threshold
    with np.errstate(invalid="ignore"):
        for lag in range(1, min(len(moves), size - 1) + 1):
            change = (dense[lag:] - dense[:-lag]) / moves[lag - 1]
            rise[lag:] |= change >= up
            fall[lag:] |= -change >= down
    index = np.arange(size)[:, None]
    last_rise = np.maximum.accumulate(np.where(rise, index, -(10**9)), axis=0)
    last_fall = np.maximum.accumulate(np.where(fall, index, -(10**9)), axis=0)
    held = (index - last_rise < settings["hold_windows"]) & (last_rise > last_fall)
    returning = index - last_fall < ROUGH_WINDOWS
    return held, returning


def _flat_run(dense: np.ndarray, longest: np.ndarray) -> np.ndarray:
    """Per slot and column of ``dense`` (flat or not), how many consecutive slots up to it are flat (at most the
    column's ``longest``; a missing slot breaks a run)."""
    run = np.zeros(dense.shape)
    current = dense.copy()  # the last `length` slots are all flat
    for length in range(1, int(longest.max(initial=0)) + 1):
        run[current & (length <= longest)] = length
        longer = np.zeros(dense.shape, bool)
        longer[length:] = current[length:] & dense[:-length]
        current = longer
    return run


def _flat_test(
    X: np.ndarray, counts: np.ndarray, flats: list[dict], level_columns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``repeats`` test per slot and column of a frame laid on slots (``X``, its reading ``counts``; ``flats``
    the columns' flat parameters): (ratio, deviation, whether the window is flat). The ratio is the larger of the
    flat run's length over the run that is a departure, and of the window's repeated readings over the count
    that is one (a value frozen part-way through the window; models fitted before that test have none)."""
    with np.errstate(invalid="ignore"):
        sd = np.exp(X[:, level_columns + 1]) - _EPS
        is_flat = np.isfinite(sd) & ((sd <= [flat["level"] for flat in flats]) | (X[:, level_columns + 3] >= 1.0))
    longest = np.array([flat["run"] or 0 for flat in flats])
    run = _flat_run(is_flat, longest)
    has_run = longest > 0
    ratio, deviation = np.zeros(is_flat.shape), np.zeros(is_flat.shape)
    ratio[:, has_run] = run[:, has_run] / longest[has_run]
    deviation[:, has_run] = run[:, has_run]
    needed = np.array([flat.get("pairs", 0) for flat in flats], dtype=float)
    tested = needed > 0
    pairs = np.rint(np.nan_to_num(X[:, level_columns + 3]) * np.maximum(counts - 1, 0))
    pair_ratio = np.where(tested, pairs / np.where(tested, needed, 1.0), 0.0)
    louder = pair_ratio > ratio
    return np.where(louder, pair_ratio, ratio), np.where(louder, pairs, deviation), is_flat


def _flat_returns(flagged: np.ndarray, is_flat: np.ndarray, has_window: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Per slot and column: whether the window is the return of a flat run the flat test flagged (``flagged``) in
    the slot before: the first window after it that is not flat, where the level test holds no departure.

    That window holds the run's last readings and the step from the held value back to the sensor's level: its
    spread and peak-to-peak are the step's, its repeated readings the run's tail, its mean part held value and
    part level, and the asset's relations see that mean. Tested, it was flagged as a new departure (the holdout's
    flatline: "noise 5.0 sigma above normal", flat readings, drift, T² and Q, after the run had been flagged for
    hours), though the run was reported and the sensor is back. So it has no test of its own and its level counts
    at the centre in T² and Q, as a sensor's missing window does; the window after it is the sensor's own readings,
    tested in full: a sensor that comes back wrong is flagged one window later. Not while the level test holds a
    departure: a sensor still away from normal, flat only now and then (SKAB's valve1/7: a closed valve's flow at
    a few counts, a window in three flat), is not back, and each of its windows is tested as any other."""
    returns = np.zeros(flagged.shape, bool)
    returns[1:] = flagged[:-1] & ~is_flat[1:] & has_window[1:]
    return returns & ~held


class AssetModel:
    """The normal behaviour of one asset, fitted on a baseline of its frame."""

    def __init__(self, params: dict):
        if params.get("version") != VERSION:
            raise ValueError("Normal model parameters of an older version: train the normal models again.")
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
        tests = len(frame.sensors) * len(CONTRIBUTION_FEATURES)
        per_test = false_alarm_rate / tests
        slots = _slots(frame)
        span_days = (frame.slot_end[-1] - frame.slot_start[0]) / np.timedelta64(1, "D")
        centres, scales, long_scales, clips, profiles, moves, flats = [], [], [], [], [], [], []
        persistences = []
        for i, sensor in enumerate(frame.sensors):
            lsb = float(resolution.get(sensor, 0.0))
            spread = np.exp(frame.column(i, "spread")) - _EPS
            noise = float(np.nanmedian(spread)) if np.isfinite(spread).any() else 0.0
            counts = frame.count[:, i]
            per_window = float(np.median(counts[counts > 0])) if (counts > 0).any() else 1.0
            flats.append(_fit_flat(frame, i, noise, lsb, per_window, per_test))
            for j, feature in enumerate(SENSOR_FEATURES):
                values = frame.X[:, i * n_features + j].copy()
                clip = None
                if feature in ("spread", "range"):
                    raw = np.exp(values) - _EPS
                    typical = float(np.nanmedian(raw)) if np.isfinite(raw).any() else 0.0
                    clip = max(LOW_CLIP * typical, lsb, 1e-12)
                    values = np.log(np.maximum(raw, clip))
                profile, crossed = None, 0.0
                if feature == "level" and span_days >= PROFILE_MIN_DAYS:
                    profile, crossed = _learned_profile(
                        frame.slot_start, values, weekly=span_days >= PROFILE_WEEKLY_DAYS
                    )
                residual = values - crossed
                centre, mad = _robust(residual)
                if feature == "level":
                    floor = max(lsb / math.sqrt(12), noise / math.sqrt(per_window), 1e-6 * max(1.0, abs(centre)))
                elif feature in ("spread", "range"):
                    floor = SPREAD_FLOOR
                else:
                    floor = 1.0  # unused: the repeats column is tested as flat runs
                short = max(mad, floor)
                long = max(short, _horizon_scale(residual, slots))
                if feature == "level":
                    moves.append(_fit_moves(residual, slots, floor, long).round(12).tolist())
                    rho = _lag_one(residual, slots)
                    persistences.append(min((1 + rho) / (1 - rho), PERSISTENCE_MAX))
                if feature != "repeats":
                    long *= _tail_factor((residual - centre) / long)
                    long *= _t_factor(residual, slots, per_test)
                centres.append(centre)
                scales.append(short)
                long_scales.append(long)
                clips.append(clip)
                profiles.append(profile)
        model = cls(
            {
                "version": VERSION,
                "sensors": list(frame.sensors),
                "centres": centres,
                "scales": scales,
                "long_scales": long_scales,
                "clips": clips,
                "profiles": profiles,
                "moves": moves,
                "flat": flats,
                "persistence": persistences,
                "settings": {
                    "hold_windows": HOLD_WINDOWS,
                    "move_factor": MOVE_FACTOR,
                    "hold_factor": HOLD_FACTOR,
                    "return_factor": RETURN_FACTOR,
                },
                "false_alarm_rate": false_alarm_rate,
                "baseline_windows": len(frame),
                "baseline_start": str(frame.slot_start[0]),
                "baseline_end": str(frame.slot_end[-1]),
            }
        )
        model._fit_roughness(frame, per_test)
        model._fit_pca(np.nan_to_num(model._z(frame, long=True)))
        model.calibrate()
        return model

    def _fit_roughness(self, frame: AssetFrame, per_test: float) -> None:
        """Each sensor's limit of the median squared move over ROUGH_WINDOWS slots, in units of its typical move
        at lag one (the abrupt test's): for Gaussian moves, the chi-square(1) quantile q with P(median > q) = the
        per-test rate (binomial: most of the moves beyond q), widened where the baseline's own 95th percentile of
        the statistic is larger than a Gaussian baseline's."""
        from scipy.optimize import brentq
        from scipy.stats import binom, chi2

        slots, short, limits = _slots(frame), self._z(frame), []
        need = ROUGH_WINDOWS // 2 + 1  # moves beyond q for the median to be

        def beyond(probability: float) -> float:
            return float(binom.sf(need - 1, ROUGH_WINDOWS, probability))

        quantile = float(chi2.isf(brentq(lambda p: beyond(p) - per_test, 1e-300, 0.5), 1))
        typical = float(chi2.isf(brentq(lambda p: beyond(p) - 0.05, 1e-300, 0.5), 1))
        steps = []
        for i in range(len(self.params["sensors"])):
            column = i * len(SENSOR_FEATURES)
            step = self.params["moves"][i][0] / self.params["scales"][column]
            dense, position = _dense(short[:, column], slots)
            baseline = _roughness(dense[:, None], np.array([step]), ROUGH_WINDOWS)[position, 0]
            tail = max(1.0, float(np.quantile(baseline, 0.95)) / typical) if len(baseline) else 1.0
            limits.append(quantile * tail)
            steps.append(step)
        self.params["rough"] = {"windows": ROUGH_WINDOWS, "limits": limits, "steps": steps}

    def _pca_columns(self) -> list[int]:
        n_features = len(SENSOR_FEATURES)
        return [
            i * n_features + SENSOR_FEATURES.index(feature)
            for i in range(len(self.params["sensors"]))
            for feature in PCA_FEATURES
        ]

    def _fit_pca(self, Z: np.ndarray) -> None:
        """Principal components of the correlation of the baseline's long-band z-scores (PCA_FEATURES)."""
        columns = self._pca_columns()
        data = Z[:, columns]
        rows, cols = data.shape
        if rows < 8 or cols < 2:
            self.params["pca"] = None
            return
        eigenvalues, vectors = _correlation_eigen(data)
        explained = np.cumsum(eigenvalues) / max(eigenvalues.sum(), _EPS)
        k = int(min(np.searchsorted(explained, 0.9) + 1, max(1, rows // 4), cols - 1))
        rest = np.maximum(eigenvalues[k:], 1e-6)
        self.params["pca"] = {
            "columns": columns,
            "loadings": vectors[:, :k].round(9).tolist(),
            "eigenvalues": np.maximum(eigenvalues[:k], 1e-6).round(9).tolist(),
            "theta": [float(rest.sum()), float((rest**2).sum())],
            "held_out": _held_out_inflation(data, k) if rows >= 16 else [1.0, 1.0],
        }

    def calibrate(self) -> None:
        """Thresholds for the target false-alarm rate per window (``params["false_alarm_rate"]``).

        The per-sensor tests share the rate by Bonferroni: T is the two-sided Gaussian quantile at
        rate / (sensors x tests per sensor); the scales they divide by carry the baseline's uncertainty (see
        the module's doc). T² and Q get the chi-square quantile at the rate (Wilson-Hilferty; Q as g chi-square
        with h degrees of freedom, Box), times their held-out inflation. The gradual test's per sensor: see there.
        """
        rate = min(max(self.params["false_alarm_rate"], 1e-15), 0.5)
        tests = len(self.params["sensors"]) * len(CONTRIBUTION_FEATURES)
        threshold = NormalDist().inv_cdf(1 - rate / tests / 2)
        thresholds = {"z": threshold, "drift": threshold}
        # A gradual departure lasts: a false one is many windows (about the level's persistence, the integrated
        # autocorrelation time), so its test keeps the per-window rate by a rate that much smaller per test.
        thresholds["gradual"] = [
            NormalDist().inv_cdf(1 - rate / tests / persistence / 2) for persistence in self.params["persistence"]
        ]
        pca = self.params.get("pca")
        if pca is not None:
            one = NormalDist().inv_cdf(1 - rate)
            t1, t2 = pca["theta"]
            g, h = t2 / max(t1, _EPS), t1 * t1 / max(t2, _EPS)
            thresholds["t2"] = _chi2(len(pca["eigenvalues"]), one) * pca["held_out"][0]
            thresholds["q"] = g * _chi2(h, one) * pca["held_out"][1]
        self.params["thresholds"] = thresholds

    # -- scoring ---------------------------------------------------------------------------------------------
    def _z(self, frame: AssetFrame, *, long: bool = False) -> np.ndarray:
        """Every column as a z-score: (value - centre) / scale, short-term or long-horizon scales."""
        p = self.params
        X = frame.X.copy()
        for column, (profile, clip) in enumerate(zip(p["profiles"], p["clips"], strict=True)):
            if clip is not None:
                X[:, column] = np.log(np.maximum(np.exp(X[:, column]) - _EPS, clip))
            if profile is not None:
                X[:, column] -= _profile_of(frame.slot_start, profile)
        return (X - np.asarray(p["centres"])) / np.asarray(p["long_scales" if long else "scales"])

    def score(self, frame: AssetFrame) -> AssetScores:
        """The scores of every row of ``frame`` (see ``score_assets``, which scores many assets at once)."""
        return score_assets([self], [frame])[0]

    def explain(self, scores: AssetScores, row: int, *, top: int = 3) -> list[dict]:
        """The sensors and tests that departed most at ``row`` (by ratio to their thresholds), largest first.

        ``z`` is the ratio times ``thresholds["z"]`` (signed: above or below normal), so ``|z| >= thresholds["z"]``
        is a test over its threshold; ``deviation`` is the departure in the test's own sigmas (the level's in its
        short-term band, so deviation x scale is the change in the sensor's unit)."""
        sensors = self.params["sensors"]
        n = len(CONTRIBUTION_FEATURES)
        values = scores.contributions[row]
        deviations = scores.deviations[row] if scores.deviations is not None else values
        order = np.argsort(-np.abs(values), kind="stable")[:top]
        return [
            {
                "sensor": sensors[index // n],
                "feature": CONTRIBUTION_FEATURES[index % n],
                "z": round(float(values[index]), 2),
                "deviation": round(float(deviations[index]), 2),
            }
            for index in order
            if abs(values[index]) > 0
        ]


# Scoring many assets at once: their frames laid side by side on one grid of window slots, a column per sensor
# of each asset. A scheduled run scores a few rows of hundreds of assets: one asset at a time, Python's overhead
# per asset and sensor was most of the run. At most this many cells per batch (slots x columns): an asset whose
# range is far from the others' (a backlog of months) is scored in a batch of its own, not on a grid of both.
BATCH_CELLS = 2_000_000


def score_assets(models: list[AssetModel], frames: list[AssetFrame]) -> list[AssetScores]:
    """``AssetModel.score`` of each model on its frame (same order), computed together.

    A row's scores depend only on the rows of its own asset (by slot), so laying the frames on one grid of slots
    (NaN where an asset has no row) gives each the scores it would get alone. Assets are batched by the span of
    their window slots and their settings, and so that a batch's grid stays within BATCH_CELLS.
    """
    results: list[AssetScores | None] = [None] * len(models)
    groups: dict[tuple, list[int]] = {}
    slots: dict[int, np.ndarray] = {}
    for index, (model, frame) in enumerate(zip(models, frames, strict=True)):
        p = model.params
        if not len(frame):
            results[index] = _score_batch([model], [frame], np.zeros(0, np.int64), [np.zeros(0, np.int64)])[0]
            continue
        slots[index] = _slots(frame)
        key = (
            frame.slot_end[0] - frame.slot_start[0],
            tuple(sorted(p["settings"].items())),
            p["rough"]["windows"],
            len(p["moves"][0]) if p["moves"] else 0,
        )
        groups.setdefault(key, []).append(index)
    for members in groups.values():
        # In order of their first slot: a batch's grid starts at its first member's and grows to the right.
        members.sort(key=lambda index: slots[index][0])
        batches: list[list[int]] = []
        first = last = columns = 0
        for index in members:
            width = len(models[index].params["sensors"])
            wider = max(last, slots[index][-1])
            if batches and (wider - first + 1) * (columns + width) * len(SENSOR_FEATURES) <= BATCH_CELLS:
                batches[-1].append(index)
                last, columns = wider, columns + width
            else:
                batches.append([index])
                first, last, columns = slots[index][0], slots[index][-1], width
        for batch in batches:
            first, last = slots[batch[0]][0], max(slots[index][-1] for index in batch)
            grid = first + np.arange(last - first + 1)
            positions = [slots[index] - first for index in batch]
            chosen = [models[index] for index in batch], [frames[index] for index in batch]
            scores = _score_batch(*chosen, grid, positions)
            for index, item in zip(batch, scores, strict=True):
                results[index] = item
    return results


def _score_batch(
    models: list[AssetModel], frames: list[AssetFrame], grid: np.ndarray, positions: list[np.ndarray]
) -> list[AssetScores]:
    """The scores of assets whose frames share a slot span and settings, on the slots ``grid``; ``positions``:
    each frame's rows on it."""
    n_features, n_tests = len(SENSOR_FEATURES), len(CONTRIBUTION_FEATURES)
    first = models[0].params
    settings = first["settings"]
    widths = [len(model.params["sensors"]) for model in models]
    offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    n = int(offsets[-1])
    size = len(grid)
    span = frames[0].slot_end[0] - frames[0].slot_start[0] if size else np.timedelta64(1, "s")
    # The frames on the grid; each column's present rows (its asset has a row there).
    X = np.full((size, n * n_features), np.nan)
    present = np.zeros((size, n), bool)
    counts = np.zeros((size, n))
    for frame, position, lo, hi in zip(frames, positions, offsets[:-1], offsets[1:], strict=True):
        X[position, lo * n_features : hi * n_features] = frame.X
        present[position, lo:hi] = True
        counts[position, lo:hi] = frame.count.reshape(len(position), hi - lo)  # an empty frame: (0, 0)

    def joined(name: str) -> list:
        return [value for model in models for value in model.params[name]]

    def joined_rough(name: str) -> list[float]:
        return [value for model in models for value in model.params["rough"][name]]

    # z-scores, short-term and long-horizon (``AssetModel._z`` on every column).
    times = EPOCH + span * grid
    Z = X.copy()
    for column, (profile, clip) in enumerate(zip(joined("profiles"), joined("clips"), strict=True)):
        if clip is not None:
            Z[:, column] = np.log(np.maximum(np.exp(Z[:, column]) - _EPS, clip))
        if profile is not None:
            Z[:, column] -= _profile_of(times, profile)
    centres = np.asarray(joined("centres"))
    short = (Z - centres) / np.asarray(joined("scales"))
    long = (Z - centres) / np.asarray(joined("long_scales"))
    threshold = np.repeat([model.params["thresholds"]["z"] for model in models], widths)
    level_columns = np.arange(n) * n_features
    scales = np.asarray(joined("scales"))[level_columns]
    # Present rows' NaN count as 0, as in a frame of the asset alone; rows the asset does not have stay NaN.
    z = np.where(present, np.nan_to_num(short[:, level_columns]), np.nan)
    ratios = np.zeros((size, n, n_tests))
    deviations = np.zeros((size, n, n_tests))
    level, spread, range_, repeats, drift = range(n_tests)
    moves = np.asarray(joined("moves"), dtype=float).T / scales
    held, returning = _held(np.abs(z), moves, settings, threshold)
    ratios[:, :, level] = np.where(held, np.abs(z) / (settings["hold_factor"] * threshold), 0.0)
    deviations[:, :, level] = z
    gradual = np.nan_to_num(long[:, level_columns])
    gradual_thresholds = np.asarray([value for model in models for value in model.params["thresholds"]["gradual"]])
    ratios[:, :, drift] = np.abs(gradual) / gradual_thresholds
    deviations[:, :, drift] = gradual
    for feature in (spread, range_):
        value = np.nan_to_num(long[:, level_columns + feature])
        ratios[:, :, feature] = np.abs(value) / threshold
        deviations[:, :, feature] = value
    # A fast new oscillation shows as the level's windows moving far more than normal: noise, too.
    rough = _roughness(z, np.asarray(joined_rough("steps")), first["rough"]["windows"])
    # A departure on its way back to normal moves a lot too; that is not a new oscillation.
    rough_ratio = np.where(returning, 0.0, np.sqrt(rough / np.asarray(joined_rough("limits"))))
    louder = rough_ratio > ratios[:, :, spread]
    ratios[:, :, spread] = np.where(louder, rough_ratio, ratios[:, :, spread])
    deviations[:, :, spread] = np.where(louder, rough_ratio * threshold, deviations[:, :, spread])
    flat_ratio, deviations[:, :, repeats], is_flat = _flat_test(X, counts, joined("flat"), level_columns)
    ratios[:, :, repeats] = flat_ratio
    # The window in which a flat run the model flagged ends, the level back (no departure held): the run's return
    # to the sensor's readings, not a departure (see _flat_returns). No test of its own, nor its level in the
    # asset's T² and Q.
    returns = _flat_returns(flat_ratio >= 1, is_flat, np.isfinite(X[:, level_columns]), held)
    ratios[returns] = 0.0
    deviations[returns] = 0.0
    signs = np.where(deviations < 0, -1.0, 1.0)
    own = ratios.max(axis=2)
    contributions = ratios * signs * threshold[None, :, None]
    results = []
    for model, position, lo, hi in zip(models, positions, offsets[:-1], offsets[1:], strict=True):
        p = model.params
        rows = len(position)
        mine_own = own[position, lo:hi]
        sensor_ratio = mine_own.copy()
        asset_ratio = np.zeros(rows)
        pca = p.get("pca")
        if pca is not None:
            # The asset's own cells alone (``long[position]`` would copy the rows of every asset in the batch).
            columns = lo * n_features + np.asarray(pca["columns"], dtype=np.int64)
            data = np.nan_to_num(long[position[:, None], columns])
            data[returns[position, lo:hi][:, np.asarray(pca["columns"], dtype=np.int64) // n_features]] = 0.0
            loadings = np.asarray(pca["loadings"])
            projected = data @ loadings
            t2 = ((projected**2) / np.asarray(pca["eigenvalues"])).sum(axis=1)
            q = ((data - projected @ loadings.T) ** 2).sum(axis=1)
            asset_ratio = np.maximum(t2 / p["thresholds"]["t2"], q / p["thresholds"]["q"])
            # The asset's departure is shared out to its sensors by their squared z in the PCA columns.
            share = np.zeros((rows, hi - lo))
            for k, column in enumerate(pca["columns"]):
                share[:, column // n_features] += data[:, k] ** 2
            share /= np.maximum(share.sum(axis=1, keepdims=True), _EPS)
            sensor_ratio = np.maximum(sensor_ratio, asset_ratio[:, None] * np.sqrt(share))
        ratio = np.maximum(sensor_ratio.max(axis=1) if hi > lo else np.zeros(rows), asset_ratio)
        results.append(
            AssetScores(
                ratio,
                sensor_ratio,
                contributions[position, lo:hi].reshape(rows, (hi - lo) * n_tests),
                asset_ratio,
                mine_own,
                deviations[position, lo:hi].reshape(rows, (hi - lo) * n_tests),
                (flat_ratio >= 1)[position, lo:hi] & ~returns[position, lo:hi],
            )
        )
    return results


def _fit_moves(residual: np.ndarray, slots: np.ndarray, floor: float, long: float) -> np.ndarray:
    """The baseline's typical move at each lag 1..MOVE_LAGS: sqrt(2 gamma(lag)), non-decreasing with the lag,
    lags the baseline is too short for taking the longest it knows, never below MOVE_LONG x the long band or the
    level's floor."""
    dense, _ = _dense(residual, slots)
    moves = np.array(
        [
            math.sqrt(2 * g) if np.isfinite(g) else np.nan
            for g in (_semivariogram(dense, lag) for lag in range(1, MOVE_LAGS + 1))
        ]
    )
    known = np.isfinite(moves)
    moves = np.where(known, moves, np.nanmax(moves) if known.any() else math.sqrt(2) * long)
    return np.maximum(np.maximum.accumulate(moves), max(math.sqrt(2) * floor, MOVE_LONG * long))


def _fit_flat(frame: AssetFrame, sensor: int, noise: float, lsb: float, per_window: float, per_test: float) -> dict:
    """When a window of the sensor is flat, and how many flat windows in a row are a departure."""
    sd = np.exp(frame.column(sensor, "spread")) - _EPS
    repeats = frame.column(sensor, "repeats")
    # Flat: a share of the typical noise, or the resolution (a frozen value dithering by one LSB), but never half
    # the typical noise (a coarse sensor's normal windows).
    level = min(max(FLAT_SHARE * noise, lsb), 0.5 * noise)
    present = np.isfinite(sd)
    flat = present & ((sd <= level) | (repeats >= 1.0))
    # Laplace's estimate of a window's chance to be flat, at least that of a window of repeats given the
    # baseline's share of repeated readings (a quantised sensor repeats values).
    chance = (int(flat.sum()) + 0.5) / (int(present.sum()) + 1)
    if np.isfinite(repeats).any():
        chance = max(chance, float(np.nanmean(repeats)) ** max(per_window - 1, 1))
    run = math.ceil(math.log(max(per_test, 1e-300)) / math.log(min(chance, 0.999)))
    # A sensor so often flat that no run within the model's memory would be unusual has no flat test (run 0).
    return {
        "level": level,
        "run": int(max(run, 1)) if run <= FLAT_MAX_RUN else 0,
        "pairs": _fit_repeated_pairs(repeats, frame.count[:, sensor], per_window, per_test),
    }


def _fit_repeated_pairs(repeats: np.ndarray, counts: np.ndarray, per_window: float, per_test: float) -> int:
    """How many readings of one window equal to the one before them are a departure (0: no such test).

    A value frozen part-way through a window (a flatline's first window) leaves it neither flat nor out of its
    band, so the flat-run test finds it one or two windows later; a sensor whose readings hardly ever repeat
    shows it at once as repeated readings. The smallest count k that the baseline makes unlikely: binomial over
    the window's pairs at the baseline's share of repeats (Laplace's estimate), and above the most repeats any
    baseline window held (repeats that cluster, a slow coarse signal, are not independent). Where k would not fit
    in a window, the sensor repeats too often for this test."""
    from scipy.stats import binom

    present = np.isfinite(repeats) & (counts > 1)
    if not present.any():
        return 0
    pairs = np.rint(repeats[present] * (counts[present] - 1))
    chance = (float(pairs.sum()) + 0.5) / (float((counts[present] - 1).sum()) + 1)
    trials = max(round(per_window) - 1, 1)
    needed = next((k for k in range(1, trials + 1) if binom.sf(k - 1, trials, chance) <= per_test), 0)
    needed = max(needed, int(pairs.max()) + 1) if needed else 0
    return needed if needed <= trials else 0


def _correlation_eigen(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and vectors of the columns' correlation (constant columns uncorrelated)."""
    sd = data.std(axis=0)
    centred = data - data.mean(axis=0)
    outer = np.outer(sd, sd)
    correlation = np.where(outer > 1e-12, (centred.T @ centred) / len(data) / np.maximum(outer, 1e-12), 0.0)
    np.fill_diagonal(correlation, 1.0)
    eigenvalues, vectors = np.linalg.eigh(correlation)
    order = np.argsort(eigenvalues)[::-1]
    return eigenvalues[order], vectors[:, order]


def _held_out_inflation(data: np.ndarray, k: int) -> list[float]:
    """How much larger T² and Q are (medians) on one half of the baseline under components fitted on the other
    half than on the half fitted, averaged over both ways round; at least 1."""
    half = len(data) // 2
    ratios = []
    for fit, held in ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))):
        eigenvalues, vectors = _correlation_eigen(data[fit])
        loadings, variances = vectors[:, :k], np.maximum(eigenvalues[:k], 1e-6)

        def stats(x, loadings=loadings, variances=variances):
            projected = x @ loadings
            return ((projected**2) / variances).sum(axis=1), ((x - projected @ loadings.T) ** 2).sum(axis=1)

        (t2_in, q_in), (t2_out, q_out) = stats(data[fit]), stats(data[held])
        ratios.append((np.median(t2_out) / max(np.median(t2_in), 1e-9), np.median(q_out) / max(np.median(q_in), 1e-9)))
    return [max(1.0, float(np.mean([r[0] for r in ratios]))), max(1.0, float(np.mean([r[1] for r in ratios])))]


def _chi2(k: float, z_one: float) -> float:
    """Chi-square quantile with ``k`` degrees of freedom at the one-sided normal quantile ``z_one``
    (Wilson-Hilferty)."""
    k = max(k, 1e-3)
    return k * max(1 - 2 / (9 * k) + z_one * math.sqrt(2 / (9 * k)), 0.0) ** 3

"""Fault shapes that ``seed_data`` never makes: a holdout for the detectors, and fault drills for operators.

``readings.synthetic`` injects the fault kinds the supervised detectors are trained on (spikes, drop-outs,
stuck values, noise bursts, level shifts, drifts). A detector that only learned those kinds can look good on
them and still miss what a plant really does. The shapes here are deliberately others (``HoldoutShape``):

- drift: a ramp slow enough to stay inside the normal range for ``DRIFT_INSIDE`` readings (4 hours at one
  reading a minute) before it crosses it, continuing ``DRIFT_PAST`` readings beyond;
- step: a level step of 12 % of the normal range's width (less where the range has less room), staying inside;
- variance: noise growing from 1x to 6x the sensor's own (standard deviation), the mean unchanged;
- oscillation: a sine of period ``OSCILLATION_PERIOD`` readings (no seeded signal has one), 4 % of the width
  and at least 3 noise standard deviations in amplitude;
- frozen: the last value before the onset, with +-1 LSB of dither (an exact-repeat test misses it);
- flatline: exactly one value, the median of the hour before the onset (plausible, inside the range);
- spikes: single-reading spikes every 6 to 20 readings, each 20-35 % of the width (at least 8 noise
  standard deviations), either way;
- gap: no readings for ``SHAPE_LENGTHS[gap]`` readings, then readings return as if nothing happened.

They are laid on the sensor's own normal behaviour: ``replay`` continues a sensor after its latest reading
with the readings of the same time of day on recent days (labelled faults and flagged readings left out), so
the daily and shift patterns and the noise are the sensor's own. Everything here is pure computation; the
service that reads a sensor's recent readings and writes the result through ``readings_insert`` is
``readings.services.readings_holdout_append``. The shapes' onsets and ends are returned, never stored as
fault labels: training must not see them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from readings.choices import HoldoutShape

# Lengths in readings, so the shapes scale with the sampling interval.
DRIFT_INSIDE = 240  # readings a drift stays inside the normal range
DRIFT_PAST = 30  # readings it goes on once outside
SHAPE_LENGTHS: dict[str, int] = {
    HoldoutShape.DRIFT: DRIFT_INSIDE + DRIFT_PAST,  # at least: the crossing may come a little later
    HoldoutShape.STEP: 180,
    HoldoutShape.VARIANCE: 180,
    HoldoutShape.OSCILLATION: 180,
    HoldoutShape.FROZEN: 180,
    HoldoutShape.FLATLINE: 180,
    HoldoutShape.SPIKES: 120,
    HoldoutShape.GAP: 120,
}
STEP_WIDTH_SHARE = 0.12
VARIANCE_GROWTH = 6.0
OSCILLATION_PERIOD = 15
OSCILLATION_WIDTH_SHARE = 0.04
SPIKE_GAPS = (6, 20)
SPIKE_WIDTH_SHARE = (0.2, 0.35)
# Readings of the hour before the onset whose median a flatline holds (at one reading a minute).
FLATLINE_FROM = 60
# A shape must leave this share of the range's room unused where it has to stay inside (rounding, margins).
_ROOM_MARGIN = 0.8


@dataclass(frozen=True)
class LaidShape:
    """A shape laid on a base signal: the values, which readings exist, and where the fault is (indices)."""

    shape: str
    values: np.ndarray
    present: np.ndarray  # bool: False where the shape removes the reading (gap)
    first: int  # first affected reading
    last: int  # last affected reading (inclusive)
    crossing: int | None = None  # drift: first reading outside the normal range
    magnitude: float = 0.0  # in the sensor's unit: step, amplitude, largest spike, drift at the crossing
    detail: dict = field(default_factory=dict)


def noise_sigma(values: np.ndarray) -> float:
    """The sensor's noise (standard deviation) from its readings: robust spread of successive differences.

    Differences remove the slow daily and shift patterns; the MAD ignores their steps and any odd reading.
    """
    steps = np.diff(np.asarray(values, dtype=np.float64))
    if not len(steps):
        return 0.0
    return float(1.4826 * np.median(np.abs(steps - np.median(steps))) / np.sqrt(2))


def resolution(values: np.ndarray) -> float:
    """The sensor's least significant bit: the smallest step between two distinct values it reported.

    Floors at a millionth of the values' spread, so a sensor reporting unrounded floats still gets a dither
    that shows in its readings.
    """
    distinct = np.unique(np.round(np.asarray(values, dtype=np.float64), 9))
    if len(distinct) < 2:
        return 1.0
    floor = (distinct[-1] - distinct[0]) * 1e-6
    return float(max(np.round(np.diff(distinct).min(), 9), floor))


def quantize(values: np.ndarray, lsb: float) -> np.ndarray:
    """``values`` on the sensor's grid of multiples of ``lsb`` (as it would report them)."""
    return np.round(np.round(np.asarray(values) / lsb) * lsb, 10)


def replay(
    recent_times: np.ndarray,
    recent_values: np.ndarray,
    usable: np.ndarray,
    times: np.ndarray,
    *,
    period: np.timedelta64,
    periods: int,
    tolerance: np.timedelta64,
) -> np.ndarray:
    """Values at ``times``: each the usable recent reading one ``period`` earlier, else two, ... up to ``periods``.

    ``recent_times`` ascending (datetime64[us]); a recent reading matches a time when it lies within
    ``tolerance`` of it. Times with no usable match in any period are NaN.
    """
    values = np.full(len(times), np.nan)
    if not len(recent_times):
        return values
    for k in range(1, periods + 1):
        wanted = np.isnan(values)
        if not wanted.any():
            break
        source = times[wanted] - period * k
        right = np.clip(np.searchsorted(recent_times, source), 1, len(recent_times) - 1)
        nearer = np.where(
            np.abs(recent_times[right] - source) < np.abs(recent_times[right - 1] - source), right, right - 1
        )
        if len(recent_times) == 1:
            nearer = np.zeros(len(source), dtype=np.int64)
        ok = (np.abs(recent_times[nearer] - source) <= tolerance) & usable[nearer]
        filled = values[wanted]
        filled[ok] = recent_values[nearer[ok]]
        values[wanted] = filled
    return values


def lay_shape(
    shape: str,
    base: np.ndarray,
    *,
    first: int,
    normal_min: float,
    normal_max: float,
    sigma: float,
    lsb: float,
    rng: np.random.Generator,
) -> LaidShape:
    """Lay ``shape`` on ``base`` (the sensor's normal continuation) from reading ``first`` on.

    Raises ValueError when ``base`` is too short after ``first`` for the shape (or, for a drift, for it to
    cross the range), or when ``first`` leaves no reading before the onset.
    """
    if shape not in SHAPE_LENGTHS:
        raise ValueError(f"Unknown holdout shape {shape!r}; use one of {', '.join(SHAPE_LENGTHS)}.")
    if first < 1:
        raise ValueError("A holdout shape needs at least one normal reading before its onset.")
    length = SHAPE_LENGTHS[shape]
    if first + length > len(base):
        raise ValueError(f"A {shape} needs {length} readings from its onset; only {len(base) - first} follow it.")
    width = max(normal_max - normal_min, 1e-9)
    sigma = max(sigma, lsb)
    base = np.asarray(base, dtype=np.float64)
    values = base.copy()
    present = np.ones(len(base), dtype=bool)
    span = slice(first, first + length)
    up, room = _room(base[span], normal_min, normal_max)
    sign = 1.0 if up else -1.0
    last = first + length - 1
    crossing = None
    magnitude = 0.0
    detail: dict = {}

    if shape == HoldoutShape.DRIFT:
        rest = base[first:]
        up, room = _room(rest[:DRIFT_INSIDE], normal_min, normal_max)
        sign = 1.0 if up else -1.0
        headroom = (normal_max - rest) if up else (rest - normal_min)
        steps = np.arange(1, len(rest) + 1)
        # The fastest ramp that stays inside for DRIFT_INSIDE readings, with rounding's half LSB to spare.
        rate = 0.98 * float(np.min((headroom[:DRIFT_INSIDE] - lsb) / steps[:DRIFT_INSIDE]))
        if rate <= 0:
            raise ValueError("The signal is at the edge of its normal range: no room for a drift inside it.")
        drifted = quantize(rest + sign * rate * steps, lsb)
        outside = np.flatnonzero((drifted > normal_max) | (drifted < normal_min))
        outside = outside[outside >= DRIFT_INSIDE]
        if not len(outside) or outside[0] + DRIFT_PAST > len(rest):
            raise ValueError("Too few readings after the onset for the drift to cross its normal range and go on.")
        crossing = first + int(outside[0])
        last = crossing + DRIFT_PAST - 1
        values[first : last + 1] = drifted[: last + 1 - first]
        magnitude = sign * rate * (crossing - first + 1)
        detail = {"rate_per_reading": sign * rate}
    elif shape == HoldoutShape.STEP:
        magnitude = sign * min(STEP_WIDTH_SHARE * width, _ROOM_MARGIN * room)
        values[span] += magnitude
    elif shape == HoldoutShape.VARIANCE:
        growth = 1.0 + (VARIANCE_GROWTH - 1.0) * np.arange(length) / (length - 1)
        # Added noise that brings the total standard deviation to growth x sigma; its own mean removed, so the
        # mean over the fault is the base's.
        added = rng.normal(0.0, 1.0, length) * sigma * np.sqrt(growth**2 - 1.0)
        values[span] += added - added.mean()
        magnitude = VARIANCE_GROWTH
        detail = {"sigma": sigma}
    elif shape == HoldoutShape.OSCILLATION:
        # It swings both ways: the room on the narrower side bounds it.
        narrower = min(normal_max - base[span].max(), base[span].min() - normal_min)
        amplitude = min(max(OSCILLATION_WIDTH_SHARE * width, 3 * sigma), _ROOM_MARGIN * max(narrower, 0.0))
        values[span] += amplitude * np.sin(2 * np.pi * np.arange(length) / OSCILLATION_PERIOD)
        magnitude = amplitude
        detail = {"period_readings": OSCILLATION_PERIOD}
    elif shape == HoldoutShape.FROZEN:
        held = float(quantize(base[first - 1], lsb))
        values[span] = held + lsb * rng.integers(-1, 2, length)
        magnitude = held
        detail = {"lsb": lsb}
    elif shape == HoldoutShape.FLATLINE:
        held = float(quantize(np.median(base[max(0, first - FLATLINE_FROM) : first]), lsb))
        values[span] = held
        magnitude = held
    elif shape == HoldoutShape.SPIKES:
        positions = [first]
        while True:
            following = positions[-1] + int(rng.integers(SPIKE_GAPS[0], SPIKE_GAPS[1] + 1))
            if following > first + length - 1:
                break
            positions.append(following)
        sizes = np.maximum(rng.uniform(*SPIKE_WIDTH_SHARE, len(positions)) * width, 8 * sigma)
        signs = np.where(rng.random(len(positions)) < 0.5, -1.0, 1.0)
        values[positions] += signs * sizes
        last = positions[-1]
        magnitude = float(sizes.max())
        detail = {"positions": [position - first for position in positions]}
    elif shape == HoldoutShape.GAP:
        present[span] = False
    values = quantize(values, lsb)
    return LaidShape(shape, values, present, first, last, crossing, float(magnitude), detail)


def _room(values: np.ndarray, normal_min: float, normal_max: float) -> tuple[bool, float]:
    """(upwards?, room): the side of the normal range with more room over ``values``, and that room."""
    above = float(normal_max - values.max())
    below = float(values.min() - normal_min)
    return (above >= below, max(above, below, 0.0))

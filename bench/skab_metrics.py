"""SKAB's scores, written from their definitions: outlier detection (F1, FAR, MAR) and changepoint detection (NAB).

Both take one array per experiment file (the test readings only: SKAB fits on the first 400 readings of a file and
scores the rest) and add the files up, as the published leaderboard does.

Outlier detection. Every test reading is a case: labelled anomalous (``anomaly`` = 1) or not, flagged or not. Over
all files concatenated: F1 = 2 TP / (2 TP + FP + FN), FAR = FP / (FP + TN) (false alarm rate, in %), MAR =
FN / (FN + TP) (missed alarm rate, in %).

Changepoint detection, NAB (Lavin and Ahmad, "Evaluating real-time anomaly detection algorithms: the Numenta Anomaly
Benchmark", 2015), as SKAB applies it:

- The true changepoints are the readings with ``changepoint`` = 1. Each opens a scoring window of ``window`` (60 s)
  to its right: [t, t + 60 s]. When a window reaches into the next one, the next one starts where it ends
  (no reading belongs to two windows' insides).
- The detector's changepoints are where its per-reading flags switch (0 to 1 or 1 to 0), and the first test reading
  if it is flagged (``changepoints_from_flags``).
- A window with at least one detected changepoint is a true positive, scored by its first detection only: A_tp for
  a detection at the window's start falling along a sigmoid to A_fp at its end (early detection is worth more;
  the sigmoid is tanh over [-pi/2, pi/2], scaled to take exactly those end values). Later detections in the same
  window cost nothing.
- A window without a detection is a false negative: A_fn.
- Every detected changepoint outside all windows is a false positive: A_fp each.
- The sum S over all files is normalised against the null detector (no detection at all: S_null = N A_fn, N the
  number of windows) and the perfect one (every window detected at its start: S_perfect = N A_tp):
  100 (S - S_null) / (S_perfect - S_null). The null detector scores 0, the perfect one 100.

Profiles (A_tp, A_fp, A_fn): standard (1, -0.11, -1), low FP (1, -0.22, -1), low FN (1, -0.11, -2).

A detector whose flags equal the labels scores about 50 on SKAB: it detects each fault's start and end, but a
fault has four changepoints (SKAB marks the valve closing and reopening inside it too), and those two windows have
no switch of its flags.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PROFILES = {
    "standard": (1.0, -0.11, -1.0),
    "low_fp": (1.0, -0.22, -1.0),
    "low_fn": (1.0, -0.11, -2.0),
}
WINDOW = np.timedelta64(60, "s")


@dataclass
class Binary:
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def f1(self) -> float:
        return 2 * self.tp / max(2 * self.tp + self.fp + self.fn, 1)

    @property
    def far(self) -> float:
        """False alarm rate, % of normal readings flagged."""
        return 100 * self.fp / max(self.fp + self.tn, 1)

    @property
    def mar(self) -> float:
        """Missed alarm rate, % of anomalous readings not flagged."""
        return 100 * self.fn / max(self.fn + self.tp, 1)


def binary_scores(true: Sequence[np.ndarray], flags: Sequence[np.ndarray]) -> Binary:
    """F1, FAR and MAR over every reading of every file (``true`` and ``flags``: one 0/1 array per file)."""
    tp = fp = fn = tn = 0
    for labels, predicted in zip(true, flags, strict=True):
        labels, predicted = np.asarray(labels, bool), np.asarray(predicted, bool)
        if labels.shape != predicted.shape:
            raise ValueError(f"labels {labels.shape} and flags {predicted.shape} differ in length")
        tp += int((labels & predicted).sum())
        fp += int((~labels & predicted).sum())
        fn += int((labels & ~predicted).sum())
        tn += int((~labels & ~predicted).sum())
    return Binary(tp, fp, fn, tn)


def changepoints_from_flags(flags: np.ndarray) -> np.ndarray:
    """Where per-reading flags switch, and the first reading if it is flagged (a detector's changepoints)."""
    flags = np.asarray(flags, bool)
    if not len(flags):
        return flags.copy()
    return np.concatenate([flags[:1], flags[1:] != flags[:-1]])


def scoring_windows(times: np.ndarray, changepoints: np.ndarray, window=WINDOW) -> list[tuple]:
    """[t, t + window] after each true changepoint, a window that overlaps the one before starting at its end."""
    windows: list[list] = []
    for t in np.asarray(times)[np.asarray(changepoints, bool)]:
        start, end = t, t + window
        if windows and windows[-1][1] >= start:
            start = windows[-1][1]
        if start < end:
            windows.append([start, end])
    return [tuple(item) for item in windows]


def _sigmoid(position: float, a_tp: float, a_fp: float) -> float:
    """A_tp at a window's start (position 0), A_fp at its end (1), along a tanh sigmoid between."""
    x = math.pi * (min(max(position, 0.0), 1.0) - 0.5)
    return a_fp + (a_tp - a_fp) * (1 - math.tanh(x) / math.tanh(math.pi / 2)) / 2


@dataclass
class Nab:
    score: float  # normalised: 0 the null detector, 100 the perfect one
    raw: float
    null: float
    perfect: float
    windows: int
    detected: int  # windows with a detection (true positives)
    false_positives: int  # detected changepoints outside every window


def nab_score(
    times: Sequence[np.ndarray],
    true_changepoints: Sequence[np.ndarray],
    detected: Sequence[np.ndarray],
    *,
    profile: str = "standard",
    window=WINDOW,
) -> Nab:
    """The NAB score of a detector over all files (``detected``: its changepoints per reading, see module doc)."""
    a_tp, a_fp, a_fn = PROFILES[profile]
    raw = 0.0
    n_windows = hits = false_positives = 0
    for file_times, truth, found in zip(times, true_changepoints, detected, strict=True):
        file_times = np.asarray(file_times)
        found_times = file_times[np.asarray(found, bool)]
        windows = scoring_windows(file_times, truth, window)
        inside = np.zeros(len(found_times), bool)
        for start, end in windows:
            in_window = (found_times >= start) & (found_times <= end)
            inside |= in_window
            if in_window.any():
                first = found_times[in_window][0]
                raw += _sigmoid(float((first - start) / (end - start)), a_tp, a_fp)
                hits += 1
            else:
                raw += a_fn
        false_positives += int((~inside).sum())
        raw += a_fp * int((~inside).sum())
        n_windows += len(windows)
    null, perfect = n_windows * a_fn, n_windows * a_tp
    score = 100 * (raw - null) / (perfect - null) if perfect != null else 0.0
    return Nab(score, raw, null, perfect, n_windows, hits, false_positives)

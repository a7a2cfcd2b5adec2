"""Scoring detections against ground truth: windows labelled from fault labels; event-level precision, recall
(overall and per fault kind) and detection delay, by the rule in ``score_detections``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlops.features import Windows, to_us
from readings.choices import FaultKind

# Labels that say a span was normal (staff's false alarms, from work order findings): negatives, never faults.
NORMAL_KINDS = frozenset({FaultKind.NORMAL})


@dataclass
class Labels:
    fault: np.ndarray  # per window: id of the fault it overlaps, -1 if none
    excluded: np.ndarray  # per window: overlaps an unlabelled episode (degradation) and no fault

    @property
    def positive(self) -> np.ndarray:
        return self.fault >= 0


def label_windows(windows: Windows, labels, *, unlabelled_kinds) -> Labels:
    """Each window's fault label (or -1), and whether it is left out: it overlaps an ``unlabelled_kinds`` episode
    and no fault. A "normal" label (a false alarm staff found) makes its windows negatives: neither a fault nor
    left out, even inside such an episode."""
    fault = np.full(len(windows), -1, dtype=np.int64)
    excluded = np.zeros(len(windows), dtype=bool)
    normal = np.zeros(len(windows), dtype=bool)
    for label in labels:
        start, end = to_us(label.start), to_us(label.end)
        overlaps = (windows.sensor_pk == label.sensor_id) & (windows.start <= end) & (windows.end >= start)
        if label.kind in NORMAL_KINDS:
            normal |= overlaps
        elif label.kind in unlabelled_kinds:
            excluded |= overlaps
        else:
            fault[overlaps & (fault < 0)] = label.pk
    return Labels(fault=fault, excluded=excluded & (fault < 0) & ~normal)


@dataclass
class Faults:
    """Ground-truth faults as time intervals [start, end), one row per fault label.

    ``end`` is the end of the fault's last reading (its time plus the sensor's sampling interval), so a fault of
    one reading lasts one interval rather than nothing.
    """

    pk: np.ndarray
    sensor_pk: np.ndarray
    kind: np.ndarray
    start: np.ndarray  # datetime64[us]
    end: np.ndarray  # datetime64[us]

    def __len__(self) -> int:
        return len(self.pk)


def faults_from_labels(labels, *, intervals: dict[int, int], unlabelled_kinds=()) -> Faults:
    """``labels`` (FaultLabel rows) as Faults, without ``unlabelled_kinds``; ``intervals``: seconds, by sensor pk."""
    kept = [label for label in labels if label.kind not in unlabelled_kinds and label.kind not in NORMAL_KINDS]

    return Faults(
        pk=np.array([label.pk for label in kept], dtype=np.int64),
        sensor_pk=np.array([label.sensor_id for label in kept], dtype=np.int64),
        kind=np.array([str(label.kind) for label in kept], dtype=object),
        start=np.array([to_us(label.start) for label in kept], dtype="datetime64[us]"),
        end=np.array(
            [to_us(label.end) + np.timedelta64(int(intervals[label.sensor_id]) * 1_000_000, "us") for label in kept],
            dtype="datetime64[us]",
        ),
    )


@dataclass
class Scores:
    precision: float
    recall: float
    f1: float
    window_f1: float
    faults: int
    detected: int
    alarms: int
    true_alarms: int = 0
    # Minutes from a fault's start to the end of the first window of the alarm that detects it (when that
    # window is complete and can be scored): the median over detected faults, None when none is.
    delay_median_minutes: float | None = None
    # Per fault kind: (faults, detected).
    by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)
    windows: int = 0

    def recall_of(self, kind: str) -> float | None:
        faults, detected = self.by_kind.get(kind, (0, 0))
        return detected / faults if faults else None

    def as_metrics(self) -> dict[str, float]:
        metrics = {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "window_f1": self.window_f1,
            "faults": float(self.faults),
            "faults_detected": float(self.detected),
            "alarms": float(self.alarms),
            "true_alarms": float(self.true_alarms),
        }
        if self.delay_median_minutes is not None:
            metrics["detection_delay_median_min"] = self.delay_median_minutes
        for kind, (faults, detected) in sorted(self.by_kind.items()):
            metrics[f"recall_{kind}"] = detected / faults if faults else 0.0
            metrics[f"faults_{kind}"] = float(faults)
        return metrics


def score_detections(
    predicted: np.ndarray, *, sensor: np.ndarray, start: np.ndarray, end: np.ndarray, faults: Faults
) -> Scores:
    """Event-level scores, as maintenance staff meet them.

    ``predicted`` flags windows; ``sensor``, ``start`` and ``end`` give each window's sensor and its fixed time
    range [start, end) (datetime64[us]); ``faults`` the ground truth. The rule (docs/mlops.md, "Evaluation"):

    - An *alarm* is a run of flagged windows of one sensor, each starting where the previous ended (staff get
      one alert for it, not one per window).
    - A window *belongs to* a fault when it overlaps the fault and starts more than min(one window, half the
      fault) before the fault ends. The windows that start in a long fault's last window-length mostly see the
      return to normal (a flatline ending, a gap closing, a shift going back): flagging them, or anything
      after the fault, is not finding it. A window that sees a fault's first minutes does belong to it.
    - An alarm is *true* when at least half of its windows belong to faults; nothing after a fault's end is
      tolerated beyond that. Precision is the share of alarms that are true (every false alarm costs a look).
    - A fault is *detected* when a true alarm has a window that belongs to it. Recall is the share of faults
      detected (a fault is found once, however long it lasts), overall and per fault kind; faults that no
      window overlaps are not counted.
    - The *delay* of a detected fault is from its start to the end of the first such window (a window is
      scored once it is complete); the median over detected faults is reported.

    Window-level F1 (windows overlapping a fault at all are positive) is reported alongside for reference.
    """
    predicted = np.asarray(predicted, dtype=bool)
    order = np.lexsort((start, sensor))
    predicted, sensor, start, end = predicted[order], sensor[order], start[order], end[order]
    n = len(predicted)
    belongs = np.zeros(n, dtype=bool)
    touches = np.zeros(n, dtype=bool)
    spans: list[tuple[int, int, int, np.ndarray]] = []  # per fault counted: (index, first, stop, its windows)
    for index in range(len(faults)):
        fs, fe, pk = faults.start[index], faults.end[index], faults.sensor_pk[index]
        lo, hi = np.searchsorted(sensor, pk, "left"), np.searchsorted(sensor, pk, "right")
        # Windows of one sensor share a length, so their ends are in order as their starts are.
        first = lo + int(np.searchsorted(end[lo:hi], fs, "right"))
        stop = lo + int(np.searchsorted(start[lo:hi], fe, "left"))
        if first >= stop:
            continue
        own = start[first:stop] < fe - np.minimum(end[first:stop] - start[first:stop], (fe - fs) // 2)
        touches[first:stop] = True
        belongs[first:stop] |= own
        spans.append((index, first, stop, own))

    follows = np.zeros(n, dtype=bool)
    follows[1:] = predicted[:-1] & (sensor[1:] == sensor[:-1]) & (start[1:] == end[:-1])
    starts_alarm = predicted & ~follows
    alarm_id = np.cumsum(starts_alarm) - 1
    alarms = int(starts_alarm.sum())
    flagged_ids = alarm_id[predicted]
    share = np.bincount(flagged_ids, weights=belongs[predicted], minlength=alarms) / np.maximum(
        np.bincount(flagged_ids, minlength=alarms), 1
    )
    true_alarm = share >= 0.5
    flagged_true = np.zeros(n, dtype=bool)
    flagged_true[predicted] = true_alarm[flagged_ids]

    by_kind: dict[str, list[int]] = {}
    delays = []
    for index, first, stop, own in spans:
        counts = by_kind.setdefault(str(faults.kind[index]), [0, 0])
        counts[0] += 1
        hits = np.flatnonzero(flagged_true[first:stop] & own)
        if len(hits):
            counts[1] += 1
            delays.append((end[first + hits[0]] - faults.start[index]) / np.timedelta64(60, "s"))

    total = sum(counts[0] for counts in by_kind.values())
    detected = sum(counts[1] for counts in by_kind.values())
    true_alarms = int(true_alarm.sum())
    precision = true_alarms / alarms if alarms else 0.0
    recall = detected / total if total else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    tp = float((predicted & touches).sum())
    flagged, positive = int(predicted.sum()), int(touches.sum())
    window_f1 = 2 * tp / (flagged + positive) if flagged + positive else 0.0
    return Scores(
        precision=precision,
        recall=recall,
        f1=f1,
        window_f1=float(window_f1),
        faults=total,
        detected=detected,
        alarms=alarms,
        true_alarms=true_alarms,
        delay_median_minutes=float(np.median(delays)) if delays else None,
        by_kind={kind: (counts[0], counts[1]) for kind, counts in sorted(by_kind.items())},
        windows=n,
    )

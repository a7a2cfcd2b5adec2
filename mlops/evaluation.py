"""Scoring detections against ground truth: windows labelled from fault labels, event-level precision and recall."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlops.features import Windows


@dataclass
class Labels:
    fault: np.ndarray  # per window: id of the fault it overlaps, -1 if none
    excluded: np.ndarray  # per window: overlaps an unlabelled episode (degradation) and no fault

    @property
    def positive(self) -> np.ndarray:
        return self.fault >= 0


def label_windows(windows: Windows, labels, *, unlabelled_kinds) -> Labels:
    fault = np.full(len(windows), -1, dtype=np.int64)
    excluded = np.zeros(len(windows), dtype=bool)
    for label in labels:
        start = np.datetime64(label.start.replace(tzinfo=None), "us")
        end = np.datetime64(label.end.replace(tzinfo=None), "us")
        overlaps = (windows.sensor_pk == label.sensor_id) & (windows.start <= end) & (windows.end >= start)
        if label.kind in unlabelled_kinds:
            excluded |= overlaps
        else:
            fault[overlaps & (fault < 0)] = label.pk
    return Labels(fault=fault, excluded=excluded & (fault < 0))


@dataclass
class Scores:
    precision: float
    recall: float
    f1: float
    window_f1: float
    faults: int
    detected: int
    alarms: int

    def as_metrics(self) -> dict[str, float]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "window_f1": self.window_f1,
            "faults": float(self.faults),
            "faults_detected": float(self.detected),
            "alarms": float(self.alarms),
        }


def score_detections(predicted: np.ndarray, fault: np.ndarray, sensor: np.ndarray) -> Scores:
    """Event-level scores, as maintenance staff meet them.

    Consecutive flagged windows of one sensor form one alarm (staff get one
    alert, not one per window). Recall: the share of faults with at least one
    flagged window inside (a fault is found once, however long it lasts).
    Precision: the share of alarms that touch a fault (every false alarm
    costs a look). Window-level F1 is reported alongside for reference.
    Windows must be in sensor, then time order.
    """
    predicted = predicted.astype(bool)
    positive = fault >= 0
    faults = set(fault[positive].tolist())
    detected = set(fault[positive & predicted].tolist())
    starts_alarm = predicted & ~np.concatenate([[False], predicted[:-1] & (sensor[1:] == sensor[:-1])])
    alarm_id = np.cumsum(starts_alarm) - 1
    alarms = int(starts_alarm.sum())
    true_alarms = len(set(alarm_id[predicted & positive].tolist()))
    precision = true_alarms / alarms if alarms else 0.0
    recall = len(detected) / len(faults) if faults else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    tp = float((predicted & positive).sum())
    flagged = int(predicted.sum())
    window_f1 = 2 * tp / (flagged + positive.sum()) if flagged + positive.sum() else 0.0
    return Scores(precision, recall, f1, float(window_f1), len(faults), len(detected), alarms)

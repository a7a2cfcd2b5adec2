"""The event rule of mlops.evaluation.score_detections: which alarms are true, which faults are detected, and when."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest

from mlops.evaluation import faults_from_labels, score_detections

T0 = datetime(2026, 3, 2, tzinfo=UTC)
MINUTE = 60  # the sensors' sampling interval, seconds
WINDOW = 10  # readings per window: 10-minute windows


def fault(sensor, kind, first_minute, last_minute, pk=None):
    """A FaultLabel as stored: from the first faulty reading's time to the last one's."""
    return SimpleNamespace(
        pk=pk if pk is not None else first_minute,
        sensor_id=sensor,
        kind=kind,
        start=T0 + timedelta(minutes=first_minute),
        end=T0 + timedelta(minutes=last_minute),
    )


def score(flagged_windows, labels, *, windows=48, sensors=(1,)):
    """Score flags given as {sensor: [window numbers]} over ``windows`` 10-minute windows per sensor."""
    sensor = np.repeat(np.array(sensors, dtype=np.int64), windows)
    number = np.tile(np.arange(windows), len(sensors))
    start = np.datetime64(T0.replace(tzinfo=None), "us") + number * np.timedelta64(WINDOW * MINUTE, "s")
    end = start + np.timedelta64(WINDOW * MINUTE, "s")
    predicted = np.zeros(len(sensor), dtype=bool)
    for pk, numbers in flagged_windows.items():
        predicted |= (sensor == pk) & np.isin(number, numbers)
    faults = faults_from_labels(labels, intervals=dict.fromkeys(sensors, MINUTE))
    return score_detections(predicted, sensor=sensor, start=start, end=end, faults=faults)


# A 3-hour flatline from 01:00 to 03:59 (readings 60..239): windows 6..23, the last one 03:50-04:00.
FLATLINE = fault(1, "stuck", 60, 239)


@pytest.mark.parametrize("last_reading", [239, 235], ids=["ends-with-the-window", "ends-inside-it"])
def test_an_alarm_only_in_the_last_window_of_a_flatline_is_not_a_detection(last_reading):
    scores = score({1: [23]}, [fault(1, "stuck", 60, last_reading)])
    assert (scores.faults, scores.detected, scores.recall) == (1, 0, 0.0)
    assert (scores.alarms, scores.true_alarms, scores.precision) == (1, 0, 0.0)
    assert scores.delay_median_minutes is None


def test_the_recovery_of_a_flatline_raises_false_alarms_only():
    # The last window and the 7 after it: what the model did on the flatline of issue 12.
    scores = score({1: list(range(23, 31))}, [FLATLINE])
    assert (scores.detected, scores.alarms, scores.true_alarms, scores.f1) == (0, 1, 0, 0.0)


def test_an_alarm_that_touches_only_the_last_minutes_of_a_fault_is_false():
    # A level shift 01:04-01:41 (readings 64..101); the window 01:40-01:50 sees its last two minutes.
    scores = score(
        {1: [6], 2: [10]}, [fault(1, "level_shift", 64, 101), fault(2, "level_shift", 64, 101)], sensors=(1, 2)
    )
    assert scores.faults == 2 and scores.detected == 1  # sensor 1, flagged at its start
    assert (scores.alarms, scores.true_alarms) == (2, 1)  # sensor 2's alarm after the fault is false
    assert scores.by_kind == {"level_shift": (2, 1)}


def test_a_flatline_found_early_is_detected_with_its_delay():
    scores = score({1: [6, 7, 8]}, [FLATLINE])
    assert (scores.detected, scores.true_alarms, scores.precision) == (1, 1, 1.0)
    assert scores.delay_median_minutes == 10.0  # found when the window 01:00-01:10 is complete


def test_a_spike_inside_one_window_is_detected_by_that_window_and_the_return_after_it_is_tolerated():
    spike = fault(1, "spike", 93, 94)  # 01:33-01:34, in the window 01:30-01:40
    assert score({1: [9]}, [spike]).f1 == 1.0
    both = score({1: [9, 10]}, [spike])  # the next window sees the return: half the alarm is the fault
    assert (both.detected, both.true_alarms, both.alarms) == (1, 1, 1)
    assert both.delay_median_minutes == pytest.approx(7.0)  # 01:33 to 01:40
    longer = score({1: [9, 10, 11]}, [spike])  # two windows of the three after it: not this fault's alarm
    assert (longer.detected, longer.true_alarms) == (0, 0)


def test_a_short_fault_across_three_windows_flagged_throughout_is_one_true_alarm():
    # A drop-out 11:48-12:04 touches the windows 11:40, 11:50 and 12:00 (the last one sees its end only).
    scores = score({1: [70, 71, 72]}, [fault(1, "dropout", 708, 724)], windows=80)
    assert (scores.detected, scores.alarms, scores.true_alarms) == (1, 1, 1)
    assert scores.delay_median_minutes == 2.0  # the window 11:40-11:50 saw its first two minutes


def test_flagging_everything_finds_nothing():
    scores = score({1: list(range(48))}, [FLATLINE, fault(1, "spike", 300, 300)])
    assert (scores.alarms, scores.true_alarms, scores.precision, scores.f1) == (1, 0, 0.0, 0.0)
    assert scores.recall == 0.0  # the only alarm is false, so it detects nothing


def test_recall_per_kind_and_median_delay():
    labels = [
        fault(1, "spike", 93, 93),  # window 9: detected at 01:40, 7 minutes
        fault(1, "drift", 200, 349),  # windows 20..34: detected by window 22 (03:40), 40 minutes
        fault(1, "drift", 400, 459),  # windows 40..45: missed
        fault(2, "stuck", 100, 129),  # sensor 2, windows 10..12: detected by window 10, 10 minutes
    ]
    scores = score({1: [9, 22, 23, 24], 2: [10, 11]}, labels, sensors=(1, 2))
    assert scores.by_kind == {"drift": (2, 1), "spike": (1, 1), "stuck": (1, 1)}
    metrics = scores.as_metrics()
    assert metrics["recall_drift"] == 0.5 and metrics["recall_spike"] == 1.0 and metrics["recall_stuck"] == 1.0
    assert metrics["faults_drift"] == 2.0
    assert metrics["detection_delay_median_min"] == 10.0  # of 7, 40 and 10
    assert (scores.faults, scores.detected, scores.alarms, scores.true_alarms) == (4, 3, 3, 3)


def test_alarms_are_runs_of_windows_contiguous_in_time():
    # Windows 9 and 11 flagged with no window 10 between them (no readings then): two alarms.
    sensor = np.array([1, 1, 1], dtype=np.int64)
    start = np.array(["2026-03-02T01:30", "2026-03-02T01:50", "2026-03-02T02:00"], dtype="datetime64[us]")
    end = start + np.timedelta64(10, "m")
    faults = faults_from_labels([fault(1, "spike", 93, 93)], intervals={1: MINUTE})
    scores = score_detections(np.array([True, True, False]), sensor=sensor, start=start, end=end, faults=faults)
    assert (scores.alarms, scores.true_alarms) == (2, 1)


def test_degradation_is_no_fault_to_find():
    labels = [fault(1, "degradation", 0, 400), fault(1, "spike", 93, 93)]
    faults = faults_from_labels(labels, intervals={1: MINUTE}, unlabelled_kinds={"degradation"})
    assert faults.kind.tolist() == ["spike"]
    # A label ends with its last reading's interval: a one-reading spike lasts one minute.
    assert faults.end[0] - faults.start[0] == np.timedelta64(60, "s")

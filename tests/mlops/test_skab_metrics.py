"""SKAB's scores (bench/skab_metrics.py): F1/FAR/MAR per reading, NAB per changepoint window."""

import numpy as np
import pytest

from bench.skab_metrics import binary_scores, changepoints_from_flags, nab_score, scoring_windows

T0 = np.datetime64("2020-03-09T10:00:00", "us")


def seconds(n: int) -> np.ndarray:
    return T0 + np.arange(n) * np.timedelta64(1, "s")


def file_with_fault(n=600, start=200, end=400):
    """One experiment: a fault from ``start`` to ``end`` (readings), changepoints where it begins and ends."""
    labels = np.zeros(n, bool)
    labels[start:end] = True
    changepoints = np.zeros(n, bool)
    changepoints[[start, end]] = True
    return seconds(n), labels, changepoints


def only(*indices, n=600):
    flags = np.zeros(n, bool)
    flags[list(indices)] = True
    return flags


def test_binary_scores_over_files():
    true = [np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0, 0, 0])]
    flags = [np.array([0, 1, 1, 1]), np.array([1, 0, 0, 0, 0, 0])]
    result = binary_scores(true, flags)
    assert (result.tp, result.fp, result.fn, result.tn) == (3, 1, 1, 5)
    assert result.f1 == pytest.approx(6 / 8)
    assert result.far == pytest.approx(100 / 6)
    assert result.mar == pytest.approx(25.0)


def test_binary_scores_refuse_different_lengths():
    with pytest.raises(ValueError, match="differ"):
        binary_scores([np.zeros(3)], [np.zeros(4)])


def test_changepoints_from_flags_are_the_switches():
    flags = np.array([1, 1, 0, 0, 1, 1, 1, 0], bool)
    assert changepoints_from_flags(flags).nonzero()[0].tolist() == [0, 2, 4, 7]
    assert not changepoints_from_flags(np.zeros(5, bool)).any()


def test_perfect_detector_scores_100_and_null_detector_0():
    times, labels, changepoints = file_with_fault()
    perfect = nab_score([times], [changepoints], [changepoints])
    assert perfect.score == pytest.approx(100.0)
    assert perfect.windows == 2 and perfect.detected == 2 and perfect.false_positives == 0
    null = nab_score([times], [changepoints], [np.zeros(len(times), bool)])
    assert null.score == pytest.approx(0.0)
    # Flags equal to the labels switch exactly at both changepoints: perfect as well.
    assert nab_score([times], [changepoints], [changepoints_from_flags(labels)]).score == pytest.approx(100.0)


def test_early_detection_scores_more_than_late():
    times, _, changepoints = file_with_fault()
    early = nab_score([times], [changepoints], [only(205, 400)]).score
    late = nab_score([times], [changepoints], [only(250, 400)]).score
    outside = nab_score([times], [changepoints], [only(300, 400)]).score  # 100 s late: outside the 60 s window
    assert 100 > early > late > outside
    # Only the first detection in a window counts; the next ones there cost nothing.
    assert nab_score([times], [changepoints], [only(205, 210, 230, 400)]).score == pytest.approx(early)


def test_false_positives_cost_a_fp_each():
    times, _, changepoints = file_with_fault()
    clean = nab_score([times], [changepoints], [changepoints])
    noisy = nab_score([times], [changepoints], [changepoints | only(50, 100, 500)])
    assert noisy.false_positives == 3
    assert noisy.raw == pytest.approx(clean.raw - 3 * 0.11)
    assert noisy.score == pytest.approx(100 * (noisy.raw + 2) / 4)


def test_window_edges_and_profiles():
    times, _, changepoints = file_with_fault()
    at_end = nab_score([times], [changepoints], [only(260, 400)])  # detected exactly at the window's end: A_fp
    assert at_end.raw == pytest.approx(1.0 - 0.11)
    low_fn = nab_score([times], [changepoints], [only(400)], profile="low_fn")
    assert low_fn.raw == pytest.approx(1.0 - 2.0) and low_fn.score == pytest.approx(100 * 3 / 6)


def test_overlapping_windows_are_cut():
    times = seconds(300)
    changepoints = only(100, 130, n=300)
    windows = scoring_windows(times, changepoints)
    assert windows[0] == (times[100], times[160])
    assert windows[1] == (times[160], times[190])
    result = nab_score([times], [changepoints], [only(101, 170, n=300)])
    assert result.detected == 2 and result.false_positives == 0


def test_scores_add_up_over_files():
    a = file_with_fault()
    b = file_with_fault(n=300, start=50, end=120)
    both = nab_score([a[0], b[0]], [a[2], b[2]], [a[2], np.zeros(300, bool)])
    assert both.windows == 4 and both.score == pytest.approx(50.0)

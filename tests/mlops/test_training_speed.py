"""Training on many windows grows each tree on a bounded sample (mlops.training.MAX_TREE_SAMPLES), and the path of
bench/training.py's reference (the features alone) on a small fleet."""

import os

import joblib
import numpy as np
import pytest
from django.core.management import call_command
from django.test import override_settings

from mlops import training
from mlops.features import FEATURES


def _data(rows: int):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, len(FEATURES)))
    y = (X[:, 0] > 1.5).astype(int)
    return X, y, np.ones(rows)


def test_each_tree_grows_on_at_most_max_tree_samples_windows_and_small_sets_train_as_before():
    X, y, weights = _data(training.MAX_TREE_SAMPLES + 500)
    model = training._fit(X, y, weights, np.arange(len(y)), seed=0)
    assert model.max_samples == training.MAX_TREE_SAMPLES
    small = training._fit(X, y, weights, np.arange(training.MAX_TREE_SAMPLES), seed=0)
    assert small.max_samples is None  # every tree on a bootstrap of all the windows, as before
    n = training.MAX_TREE_SAMPLES
    plain = training._classifier(0).fit(training._frame(X[:n]), y[:n], sample_weight=weights[:n])
    assert np.array_equal(small.predict_proba(training._frame(X)), plain.predict_proba(training._frame(X)))


def test_trees_grown_on_several_threads_make_the_same_model_which_then_predicts_in_one_order():
    X, y, weights = _data(training.MAX_TREE_SAMPLES + 500)
    with override_settings(TRAINING_JOBS=1):
        alone = training._fit(X, y, weights, np.arange(len(y)), seed=3)
    with override_settings(TRAINING_JOBS=2):
        assert training.training_jobs() == 2
        shared = training._fit(X, y, weights, np.arange(len(y)), seed=3)
    assert shared.n_jobs == alone.n_jobs == 1  # as stored and loaded: the trees' votes added in one order
    frame = training._frame(X)
    assert np.array_equal(shared.predict_proba(frame), alone.predict_proba(frame))
    for mine, theirs in zip(shared.estimators_, alone.estimators_, strict=True):
        assert np.array_equal(mine.tree_.threshold, theirs.tree_.threshold)
        assert np.array_equal(mine.tree_.value, theirs.tree_.value)


def test_training_jobs_default_to_the_cpus_the_process_may_use():
    with override_settings(TRAINING_JOBS=0):
        # joblib's count: the machine's CPUs, narrowed by this process's affinity and a container's CPU quota.
        assert training.training_jobs() == joblib.cpu_count() <= len(os.sched_getaffinity(0))
    with override_settings(TRAINING_JOBS=3):
        assert training.training_jobs() == 3


@pytest.mark.django_db
def test_the_training_bench_reference_reads_and_builds_every_sensors_windows():
    from bench.training import features_alone

    call_command("seed_data", "--sensors", "4", "--readings", "2000", "--end", "2026-01-01T00:00:00Z", "--quiet")
    reference = features_alone(repeats=2)
    assert reference["windows"] == 4 * 50
    assert len(reference["read_s"]) == len(reference["features_s"]) == 2

"""A scoring run reads its fleet once: the same look-back and the same probabilities as type by type queries."""

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from mlops.features import FEATURES
from mlops.forest import probabilities
from mlops.scoring import lookback_starts, one_run
from sensors.models import Sensor

pytestmark = pytest.mark.django_db


def test_a_run_finds_each_types_lookback_in_the_fleet_it_read_once(django_assert_num_queries):
    # 24 sensors on 6 assets, two sites: peers in a group and peers across the whole type.
    call_command("seed_data", "--sensors", "24", "--readings", "240", "--quiet")
    Sensor.objects.filter(pk=Sensor.objects.order_by("pk")[0].pk).update(status="inactive")  # a peer all the same
    by_type = {}
    for sensor in Sensor.objects.order_by("pk"):
        by_type.setdefault(sensor.sensor_type, []).append(sensor)
    assert len(by_type) > 1
    since = {sensor.pk: sensor.created_at for group in by_type.values() for sensor in group}
    alone = {
        sensor_type: lookback_starts(sensors=group, since=since, window=10) for sensor_type, group in by_type.items()
    }
    with one_run():
        first, *others = by_type
        in_run = {first: lookback_starts(sensors=by_type[first], since=since, window=10)}
        for sensor_type in others:
            with django_assert_num_queries(0):  # the fleet and its peer groups are known
                in_run[sensor_type] = lookback_starts(sensors=by_type[sensor_type], since=since, window=10)
    for sensor_type, (everyone, starts) in alone.items():
        assert [sensor.pk for sensor in in_run[sensor_type][0]] == [sensor.pk for sensor in everyone]
        assert in_run[sensor_type][1] == starts


@pytest.mark.parametrize("classes", [2, 3])
def test_probabilities_are_predict_proba_bit_for_bit(classes):
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(400, len(FEATURES))), columns=list(FEATURES))
    X.iloc[::17, 3] = np.nan  # missing features go down the trees as in predict_proba
    y = rng.integers(0, classes, size=len(X))
    forest = RandomForestClassifier(n_estimators=30, class_weight="balanced_subsample", random_state=1, n_jobs=1)
    forest.fit(X, y)
    new = pd.DataFrame(rng.normal(size=(123, len(FEATURES))) * 3, columns=list(FEATURES))
    assert np.array_equal(probabilities(forest, new), forest.predict_proba(new))
    other = LogisticRegression().fit(X.fillna(0), y)  # any other model: its own predict_proba
    assert np.array_equal(probabilities(other, new), other.predict_proba(new))

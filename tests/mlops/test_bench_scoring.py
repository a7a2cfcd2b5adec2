"""The path of bench/scoring.py on a small fleet: the scheduled case and a backlog, with their reference."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_the_scoring_bench_scores_the_newest_windows_and_a_backlog_against_the_features_alone(mlflow_settings):
    from bench.scoring import END, SCHEDULED, measure
    from mlops.models import Alert, ScoringWatermark
    from mlops.scoring import clear_model_cache

    clear_model_cache()
    # 8 sensors on 2 assets, 14 hours a minute apart: the look-back of 62 windows of 10 minutes and 3 hours.
    call_command("seed_data", "--sensors", "8", "--readings", str(8 * 14 * 60), "--end", END.isoformat(), "--quiet")
    call_command("train_models", "--promote", stdout=StringIO())  # the supervised detectors and the normal models

    scheduled = measure(back=SCHEDULED, repeats=2)
    assert scheduled["windows"] == 8  # the newest window of each sensor, in every repeat
    assert len(scheduled["score_s"]) == len(scheduled["features_s"]) == 2
    assert scheduled["ratio_to_features"] == scheduled["score_median_s"] / scheduled["features_median_s"]
    assert set(ScoringWatermark.objects.values_list("scored_until", flat=True)) == {END}

    backlog = measure(back=timedelta(hours=3), repeats=1)
    assert backlog["windows"] == 8 * 18
    assert backlog["windows_per_s"] > 0 and backlog["features_windows_per_s"] > 0
    # Alerts opened by the untimed first run stay open through the repeats (steady state), never twice.
    assert Alert.objects.filter(status="open").count() == Alert.objects.values("sensor", "kind").distinct().count()
    clear_model_cache()

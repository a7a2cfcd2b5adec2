"""The quality target: on the default seeded fleet every sensor type's champion reaches F1 >= 0.8."""

import pytest
from django.core.management import call_command

from mlops import registry

pytestmark = pytest.mark.django_db


def test_default_fleet_champions_reach_f1_of_at_least_0_8(mlflow_settings):
    call_command("seed_data", "--end", "2026-06-01T00:00:00Z", stdout=None)  # the defaults: 20 sensors, 20,000
    # --promote: other tests in this session may already have registered
    # champions on other data; these versions must be the ones measured.
    call_command("train_models", "--promote", stdout=None)
    client = registry.client()
    scores = {}
    prefix = mlflow_settings.MLFLOW_MODEL_PREFIX
    for model in client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'"):
        champion = client.get_model_version_by_alias(model.name, registry.CHAMPION)
        metrics = client.get_run(champion.run_id).data.metrics
        scores[model.name] = (metrics["precision"], metrics["recall"], metrics["f1"])
    assert len(scores) == 8, scores  # every sensor type of the default fleet
    assert all(f1 >= 0.8 for _, _, f1 in scores.values()), scores

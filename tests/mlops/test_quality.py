"""The quality target on the default seeded fleet, by the event rule of mlops.evaluation.score_detections.

The default fleet has 24 labelled faults over 8 sensor types (1 to 5 per type), so one false alarm moves a
type's F1 by up to 0.33: the target is on the fleet as a whole (alarms and faults of every type's champion
pooled), with every fault found. Under the earlier rule, which credited an alarm touching a fault's last
minute, every type reached F1 0.8; under this one rpm has 0.67 (its level shift's return to normal raised a
second, false alarm) and temperature 0.91 (docs/mlops.md, "Evaluation: what counts as finding a fault").
"""

import pytest
from django.core.management import call_command

from mlops import registry
from sensors.models import Sensor

pytestmark = pytest.mark.django_db


def test_default_fleet_champions_find_every_fault_with_a_pooled_f1_of_at_least_0_9(mlflow_settings):
    call_command("seed_data", "--end", "2026-06-01T00:00:00Z", stdout=None)  # the defaults: 20 sensors, 20,000
    # --promote: other tests in this session may already have registered
    # champions on other data; these versions must be the ones measured.
    call_command("train_models", "--promote", "--detector", "supervised", stdout=None)
    client = registry.client()
    metrics = {}
    # The detector of each sensor type of the fleet (other tests of this session may register other models under
    # the same prefix, without a champion).
    for sensor_type in sorted(set(Sensor.objects.values_list("sensor_type", flat=True))):
        name = registry.model_name(sensor_type)
        champion = client.get_model_version_by_alias(name, registry.CHAMPION)
        metrics[name] = client.get_run(champion.run_id).data.metrics
    assert len(metrics) == 8, sorted(metrics)  # every sensor type of the default fleet
    total = {key: sum(run[key] for run in metrics.values()) for key in ("alarms", "true_alarms", "faults")}
    detected = sum(run["faults_detected"] for run in metrics.values())
    precision, recall = total["true_alarms"] / total["alarms"], detected / total["faults"]
    assert recall == 1.0, {name: run["recall"] for name, run in metrics.items()}
    assert 2 * precision * recall / (precision + recall) >= 0.9, {name: run["f1"] for name, run in metrics.items()}
    # Per fault kind and the detection delay are on every run.
    for run in metrics.values():
        assert run["detection_delay_median_min"] > 0
        assert {key for key in run if key.startswith("recall_")}, run

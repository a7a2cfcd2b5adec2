"""The normal-behaviour models through the product: trained without labels, registered, scoring, explaining.

A small fleet without injected faults (nothing labelled: the supervised detectors cannot be trained) learns
what normal looks like over five days (PUMP-001, degrading over its last days, keeps the days before: enough to
learn its daily pattern, which a baseline of a day and a bit cannot tell from a slow drift); a step inside the
normal range appended afterwards to one sensor is then flagged on that sensor, with why, and staff's threshold
factors change what is flagged.
"""

import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import F

from mlops import registry
from mlops.models import Alert, Anomaly
from mlops.scoring import clear_model_cache
from readings.models import Reading
from sensors.models import Asset, Sensor

pytestmark = pytest.mark.django_db
END = datetime(2026, 6, 1, tzinfo=UTC)
DAYS = 5
SEED = ["seed_data", "--sensors", "8", "--readings", str(8 * DAYS * 1440), "--anomaly-rate", "0", "--quiet"]


@pytest.fixture
def fleet(mlflow_settings):
    clear_model_cache()
    call_command(*SEED, "--end", END.isoformat())
    out = StringIO()
    call_command("train_models", stdout=out)
    # Six more hours of normal readings; from two hours in, MOTOR-002's current steps up 3 A, well inside its
    # normal range (5-60 A around 32, with the shifts' swing). PUMP-001 is seeded as degrading all along.
    call_command(*SEED, "--end", (END + timedelta(hours=6)).isoformat())
    current = Sensor.objects.get(asset__code="MOTOR-002", sensor_type="current")
    Reading.objects.filter(sensor=current, time__gte=END + timedelta(hours=2)).update(value=F("value") + 3)
    yield out.getvalue(), current
    clear_model_cache()


def _score():
    call_command(
        "score_readings", "--from", END.isoformat(), "--to", (END + timedelta(hours=6)).isoformat(), stdout=StringIO()
    )


def pump_left_out() -> int:
    """PUMP-001's windows left out of its baseline: those of its labelled degradation."""
    import mlflow.pyfunc

    name = registry.normal_model_name()
    version = registry.client().get_model_version_by_alias(name, registry.CHAMPION).version
    fleet = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model().fleet
    return fleet["assets"]["PUMP-001"]["baseline"]["left_out"]


def _fleets() -> tuple[dict, dict]:
    """The fleets of the champion before the last training and of the champion now (the server outlives tests)."""
    import mlflow.pyfunc

    name = registry.normal_model_name()
    version = int(registry.client().get_model_version_by_alias(name, registry.CHAMPION).version)
    return tuple(
        mlflow.pyfunc.load_model(f"models:/{name}/{number}").unwrap_python_model().fleet
        for number in (version - 1, version)
    )


def test_training_without_labels_registers_the_normal_models_of_every_asset(fleet):
    output, _ = fleet
    assert "Supervised detectors not trained: No labelled faults" in output
    assert re.search(rf"{registry.normal_model_name()} v\d+: normal behaviour of 2 asset\(s\)", output), output
    client = registry.client()
    version = client.get_model_version_by_alias(registry.normal_model_name(), registry.CHAMPION)
    assert version.tags["promotion"].startswith("promoted: refitted 2 asset(s)")
    metrics = client.get_run(version.run_id).data.metrics
    assert metrics["assets_trained"] == 2 and metrics["baseline_windows"] == 2 * DAYS * 144 - pump_left_out()
    # In-sample false alarms on the baseline: the calibration's target is about one per asset in 10,000 windows.
    assert metrics["baseline_false_alarms_per_sensor_week"] < 1

    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"models:/{registry.normal_model_name()}/{version.version}")
    assert model.metadata.signature is not None
    fleet_model = model.unwrap_python_model().fleet
    # Both assets (and those of other tests' fleets, carried over on the session's MLflow server).
    assert {"PUMP-001", "MOTOR-002"} <= set(fleet_model["assets"])
    # The default baseline is the assets' recent history minus what is known not to be normal: PUMP-001 is
    # seeded as degrading over its last days (labelled), and those windows are left out.
    motor, pump = fleet_model["assets"]["MOTOR-002"]["baseline"], fleet_model["assets"]["PUMP-001"]["baseline"]
    assert motor["windows"] == DAYS * 144 and motor["left_out"] == 0  # 10-minute windows over five days
    assert pump["left_out"] > 0 and pump["windows"] + pump["left_out"] == DAYS * 144
    # The registered model is usable on its own: readings in long form in, a ratio per asset window out.
    readings = Reading.objects.filter(sensor__asset__code="MOTOR-002", time__lt=END).order_by("-time")[:400]
    import pandas as pd

    frame = pd.DataFrame(
        [
            {"asset": "MOTOR-002", "sensor": r.sensor.sensor_id, "time": r.time.replace(tzinfo=None), "value": r.value}
            for r in readings.select_related("sensor")
        ]
    )
    predicted = model.predict(frame)
    assert len(predicted) >= 5 and (predicted["ratio"] < 1).all()


def test_a_step_inside_the_range_is_flagged_on_its_sensor_with_why(fleet, user_client):
    _, current = fleet
    _score()
    found = Anomaly.objects.filter(sensor=current, start__gte=END + timedelta(hours=2))
    assert found.exists()
    first = found.order_by("start").first()
    assert first.start < END + timedelta(hours=2, minutes=30)  # within half an hour of the onset
    assert first.detector == "normal" and first.kind == "level_shift"
    top = first.explanation["contributions"][0]
    assert top["sensor"] == current.sensor_id and top["feature"] in ("level", "drift") and top["z"] > 0
    assert "above normal" in top["text"]
    # Both detectors' scores are kept (a supervised champion of the type may exist from other training).
    assert first.explanation["ratio"] >= 1 and first.explanation["normal"] == first.score
    assert first.explanation["supervised"] is None or first.explanation["supervised"] < first.score
    # Nothing flagged before the step, nor on the asset's other sensors over the six hours.
    assert not Anomaly.objects.filter(sensor=current, start__lt=END + timedelta(hours=2)).exists()
    assert not Anomaly.objects.filter(sensor__asset__code="MOTOR-002").exclude(sensor=current).exists()
    # PUMP-001's degradation (vibration and temperature creeping up) is flagged too, with no label for it.
    assert Anomaly.objects.filter(sensor__asset__code="PUMP-001", kind__in=["drift", "level_shift"]).exists()

    # Shown in the API, and the alert (title, detail, mail) says why.
    query = {"sensor": current.sensor_id, "detector": "normal", "to": (first.start + timedelta(minutes=1)).isoformat()}
    response = user_client.get("/api/v1/anomalies", query)
    assert response.status_code == 200, response.content
    (shown,) = response.json()["results"]
    assert shown["id"] == first.pk
    assert shown["explanation"]["contributions"][0]["sensor"] == current.sensor_id
    assert shown["kind"] == "level_shift" and shown["detector"] == "normal"
    alert = Alert.objects.get(sensor=current)
    assert alert.title.startswith("Level shift on")
    assert "Why: level" in alert.detail and "above normal" in alert.detail


def test_staff_threshold_factors_make_an_asset_or_a_sensor_less_sensitive(fleet):
    _, current = fleet
    Asset.objects.filter(code="MOTOR-002").update(threshold_factor=10)
    clear_model_cache()
    _score()
    assert not Anomaly.objects.filter(sensor=current).exists()

    Asset.objects.filter(code="MOTOR-002").update(threshold_factor=1)
    Sensor.objects.filter(pk=current.pk).update(threshold_factor=10)
    _score()
    assert not Anomaly.objects.filter(sensor=current).exists()

    Sensor.objects.filter(pk=current.pk).update(threshold_factor=1)
    _score()
    assert Anomaly.objects.filter(sensor=current).exists()


def test_retraining_one_asset_on_a_chosen_baseline_carries_the_others_over(fleet):
    start, end = END - timedelta(days=2), END - timedelta(days=1)
    out = StringIO()
    call_command(
        "train_models",
        "--detector",
        "normal",
        "--asset",
        "MOTOR-002",
        "--baseline",
        start.isoformat(),
        end.isoformat(),
        stdout=out,
    )
    assert "normal behaviour of 1 asset(s)" in out.getvalue()

    before, after = _fleets()
    assert after["assets"]["PUMP-001"] == before["assets"]["PUMP-001"]
    pump = after["assets"]["MOTOR-002"]["baseline"]
    assert pump["chosen"] and start.isoformat() <= pump["start"] and pump["end"] <= end.isoformat()
    assert pump["windows"] == 144  # one day of 10-minute windows


def test_the_asset_baseline_set_by_staff_is_used_by_default(fleet):
    start = END - timedelta(days=1)
    Asset.objects.filter(code="MOTOR-002").update(baseline_start=start, baseline_end=END)
    call_command("train_models", "--detector", "normal", "--asset", "MOTOR-002", stdout=StringIO())
    _, after = _fleets()
    assert after["assets"]["MOTOR-002"]["baseline"]["chosen"] is True
    assert after["assets"]["MOTOR-002"]["baseline"]["windows"] == 144


def test_the_supervised_probability_counts_in_full_only_where_the_normal_model_sees_a_departure():
    from mlops.services import SUPERVISED_CONFIRM_RATIO, supervised_confirmed

    assert supervised_confirmed(0.9, None) == 0.9  # the normal model does not know the sensor
    assert supervised_confirmed(0.9, SUPERVISED_CONFIRM_RATIO) == 0.9
    assert supervised_confirmed(0.9, 3.0) == 0.9
    # Back to normal after a fault (the normal model sees nothing): the supervised echo falls below the threshold.
    assert supervised_confirmed(0.9, 0.1) < 0.5
    assert supervised_confirmed(0.9, 0.0) == 0.0
    # After a flat run the normal model flagged (in the supervised baseline): the sensor's ordinary noise looks
    # like a burst against the run's, so only a whole departure of the normal model lets the probability count.
    assert supervised_confirmed(0.54, 0.6) == 0.54
    assert supervised_confirmed(0.54, 0.6, after_flat=True) < 0.5
    assert supervised_confirmed(0.9, 1.0, after_flat=True) == 0.9

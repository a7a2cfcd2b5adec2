"""A value frozen part-way through a window is flagged before the window ends, and settled when it does."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from mlops.models import Alert, Anomaly, ScoringRun, ScoringWatermark
from mlops.scoring import clear_model_cache, normal_champion
from mlops.services import readings_score_pending
from readings.models import Reading
from sensors.models import Sensor

pytestmark = pytest.mark.django_db
END = datetime(2026, 6, 1, tzinfo=UTC)
WINDOW_START = END - timedelta(minutes=60)  # a window of the minutely sensors: 10 readings, 23:00 to 23:10


@pytest.fixture
def frozen(mlflow_settings):
    """The seeded fleet with its detectors, and one sensor whose value freezes 2 minutes into WINDOW_START."""
    clear_model_cache()
    call_command(
        "seed_data", "--sensors", "8", "--readings", "4000", "--anomaly-rate", "0", "--end", "2026-06-01T00:00:00Z"
    )
    call_command("train_models", "--promote", stdout=StringIO())
    fleet = normal_champion().model["assets"]
    candidates = []
    for sensor in Sensor.objects.select_related("asset").order_by("pk"):
        params = fleet[sensor.asset.code]["model"]
        pairs = params["flat"][params["sensors"].index(sensor.sensor_id)]["pairs"]
        if 0 < pairs <= 6:
            candidates.append((sensor, pairs))
    assert candidates, "no seeded sensor has the repeated-readings test"
    # One the models find normal in the hour before (not on a degrading asset): what it shows next is the freeze.
    _run(WINDOW_START, WINDOW_START - timedelta(hours=1))
    flagged = set(Anomaly.objects.values_list("sensor_id", flat=True))
    sensor, needed = next((sensor, pairs) for sensor, pairs in candidates if sensor.pk not in flagged)
    for model in (Anomaly, Alert, ScoringWatermark, ScoringRun):
        model.objects.all().delete()
    frozen_from = WINDOW_START + timedelta(minutes=2)
    value = Reading.objects.get(sensor=sensor, time=frozen_from).value
    mlflow_settings.ORIGINAL_READINGS = list(Reading.objects.filter(sensor=sensor, time__gte=frozen_from))
    assert Reading.objects.filter(sensor=sensor, time__gte=frozen_from).update(value=value) > 50
    return mlflow_settings, sensor, needed


def _run(now, since):
    groups = {}
    for sensor in Sensor.objects.order_by("pk"):
        groups.setdefault(sensor.sensor_type, []).append(sensor)
    for sensors in groups.values():
        readings_score_pending(sensors=sensors, now=now, since=since)


def _found():
    fields = ("sensor__sensor_id", "start", "end", "score", "kind", "model_version", "provisional")
    return set(Anomaly.objects.values_list(*fields))


def test_flagged_while_the_window_fills_and_every_cadence_ends_as_one_run(frozen):
    settings, sensor, needed = frozen
    settings.ANOMALY_ALERT_THRESHOLD = settings.ANOMALY_THRESHOLD
    since = WINDOW_START - timedelta(minutes=30)
    _run(END + timedelta(minutes=1), since)
    once = _found()
    full = Anomaly.objects.get(sensor=sensor, start=WINDOW_START)
    assert not full.provisional
    Anomaly.objects.all().delete()
    ScoringWatermark.objects.all().delete()
    Alert.objects.all().delete()

    # Every minute, as beat runs it: the frozen value is flagged as soon as the window holds `needed` readings
    # equal to the one before (frozen at 23:02, so by the run at 23:03 + needed), before the window ends at 23:10.
    first_seen = None
    now = since
    while now <= END + timedelta(minutes=1):
        if first_seen is None:  # staff resolve what earlier windows raised: the frozen value opens its own alert
            Alert.objects.update(status="resolved")
        _run(now, since)
        row = Anomaly.objects.filter(sensor=sensor, start=WINDOW_START).first()
        if row is not None and first_seen is None:
            first_seen = now
            assert row.provisional and row.kind == "stuck" and row.detector == "normal"
            assert row.end == now - timedelta(minutes=1)  # the latest reading in so far
            why = row.explanation["contributions"][0]
            assert (why["sensor"], why["feature"], why["deviation"]) == (sensor.sensor_id, "repeats", needed)
            assert "flat readings" in why["text"]
            # It raised its alert (every anomaly does here), which says the window is still open.
            alert = Alert.objects.get(sensor=sensor, anomaly=row)
            assert "its window has not ended" in alert.detail
        if now == WINDOW_START + timedelta(minutes=10):  # the window ended: its full verdict replaced the row
            settled = Anomaly.objects.get(sensor=sensor, start=WINDOW_START)
            assert (settled.pk, settled.provisional) == (row.pk, False)
            assert (settled.end, settled.score) == (full.end, full.score)
            assert Alert.objects.get(pk=alert.pk).anomaly_id == settled.pk  # the alert keeps its anomaly
        now += timedelta(minutes=1)
    assert first_seen == WINDOW_START + timedelta(minutes=3 + needed)
    # The same anomalies as one run over the range, none left provisional (the last window holds one reading).
    assert _found() == once


def test_a_provisional_anomaly_the_full_window_does_not_confirm_is_removed(frozen):
    _settings, sensor, needed = frozen
    since = WINDOW_START - timedelta(minutes=30)
    flagged_at = WINDOW_START + timedelta(minutes=3 + needed)
    _run(flagged_at, since)
    row = Anomaly.objects.get(sensor=sensor, start=WINDOW_START)
    assert row.provisional
    # Staff make the sensor far less sensitive before the window ends: its full verdict is normal.
    Sensor.objects.filter(pk=sensor.pk).update(threshold_factor=1000)
    _run(WINDOW_START + timedelta(minutes=10), since)
    assert not Anomaly.objects.filter(sensor=sensor, start=WINDOW_START).exists()


def test_early_flags_can_be_turned_off(frozen):
    settings, sensor, _needed = frozen
    settings.SCORING_EARLY_FLATS = False
    since = WINDOW_START - timedelta(minutes=30)
    _run(WINDOW_START + timedelta(minutes=9), since)
    assert not Anomaly.objects.filter(sensor=sensor, start=WINDOW_START).exists()
    _run(WINDOW_START + timedelta(minutes=10), since)
    assert not Anomaly.objects.get(sensor=sensor, start=WINDOW_START).provisional


def test_no_early_flag_where_a_reported_flat_run_ends(frozen):
    """The window where a flagged flat run ends is its return (mlops.normal._flat_returns), never flagged in full:
    its repeated readings so far (the run's tail) must not raise a provisional anomaly to be taken back."""
    settings, sensor, needed = frozen
    # Frozen from 23:02, the sensor's own readings again once the window from 23:30 holds needed + 1 repeats.
    back = WINDOW_START + timedelta(minutes=32 + needed)
    originals = [reading for reading in settings.ORIGINAL_READINGS if reading.time >= back]
    Reading.objects.bulk_update(originals, ["value"])
    since = WINDOW_START - timedelta(minutes=30)
    _run(END + timedelta(minutes=1), since)
    once = _found()
    flagged = set(Anomaly.objects.filter(sensor=sensor).values_list("start", flat=True))
    assert {WINDOW_START + timedelta(minutes=m) for m in (0, 10, 20)} <= flagged  # the run is reported
    assert WINDOW_START + timedelta(minutes=30) not in flagged  # its return is not
    Anomaly.objects.all().delete()
    ScoringWatermark.objects.all().delete()

    now = since
    while now <= END + timedelta(minutes=1):
        _run(now, since)
        assert not Anomaly.objects.filter(sensor=sensor, start=WINDOW_START + timedelta(minutes=30)).exists(), now
        now += timedelta(minutes=1)
    assert _found() == once

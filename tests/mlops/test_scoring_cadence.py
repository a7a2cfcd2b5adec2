"""Scheduled scoring from a watermark per sensor: any cadence finds what one run over the whole range finds."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from mlops.models import Alert, Anomaly, ScoringRun, ScoringWatermark
from mlops.services import readings_score, readings_score_pending
from readings.models import Reading
from sensors.models import Sensor

pytestmark = pytest.mark.django_db
END = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def trained(mlflow_settings):
    # 8 sensors on 2 assets (PUMP-001, MOTOR-002), 500 readings each a minute apart, ending at END.
    call_command(
        "seed_data", "--sensors", "8", "--readings", "4000", "--anomaly-rate", "0.03", "--end", "2026-06-01T00:00:00Z"
    )
    call_command("train_models", "--promote", stdout=StringIO())
    return mlflow_settings


def _by_type():
    groups = {}
    for sensor in Sensor.objects.order_by("pk"):
        groups.setdefault(sensor.sensor_type, []).append(sensor)
    return groups


def _found():
    return set(Anomaly.objects.values_list("sensor__sensor_id", "start", "end", "score", "model_version"))


def _run(now, since):
    for sensors in _by_type().values():
        readings_score_pending(sensors=sensors, now=now, since=since)


def test_runs_at_any_cadence_find_what_one_run_over_the_range_finds(trained):
    # Every scored window is stored (threshold 0), so every window's score is compared, not only anomalies'.
    trained.ANOMALY_THRESHOLD = 0.0
    trained.ANOMALY_ALERT_THRESHOLD = 2.0
    first = Reading.objects.order_by("time").first().time
    since = first + timedelta(hours=2)  # the features of the first windows scored have some history
    _run(END + timedelta(minutes=1), since)
    once = _found()
    assert len(once) > 8 * 30
    Anomaly.objects.all().delete()
    ScoringWatermark.objects.all().delete()

    # Readings that come late: PUMP-001's gateway is offline for 90 minutes (its four sensors' readings of that
    # time arrive at once when it is back), and three readings of a MOTOR-002 sensor come 5 minutes after their
    # window ended while the next ones come on time. Peers are the sensors of the same type on every asset, so
    # MOTOR-002's windows wait for PUMP-001's peers, up to the grace: here longer than the outage. (Beyond the
    # grace a window is scored without its missing peers, and a peer arriving later does not rescore it: that is
    # the documented limit of invariance.) PUMP-001's own windows wait for their readings however long it takes.
    trained.SCORING_GRACE_SECONDS = 2 * 3600
    offline_from = datetime(2026, 5, 31, 20, tzinfo=UTC)
    pump = Reading.objects.filter(
        sensor__asset__code="PUMP-001", time__gte=offline_from, time__lt=offline_from + timedelta(minutes=90)
    )
    window_end = datetime(2026, 5, 31, 21, 30, tzinfo=UTC)
    motor = Reading.objects.filter(
        sensor__sensor_id="sensor-005", time__gte=window_end - timedelta(minutes=3), time__lt=window_end
    )
    held = [(offline_from + timedelta(minutes=90), list(pump)), (window_end + timedelta(minutes=5), list(motor))]
    assert len(held[0][1]) == 4 * 90 and len(held[1][1]) == 3
    pump.delete()
    motor.delete()

    now = since
    while now <= END + timedelta(minutes=1):
        for due, readings in held:
            if due == now:
                Reading.objects.bulk_create(readings)
        _run(now, since)
        now += timedelta(minutes=1)
    assert _found() == once
    # Every window scored once: ScoringRun counts what each run scored.
    assert sum(ScoringRun.objects.values_list("windows", flat=True)) == 2 * len(once)


def test_a_backfill_never_moves_the_scheduled_start_back(trained):
    sensor = Sensor.objects.get(sensor_id="sensor-001")
    readings_score_pending(sensors=[sensor], now=END)
    mark = ScoringWatermark.objects.get(sensor=sensor).scored_until
    # The last complete window: every reading but the one at END itself.
    assert mark == END
    scored = ScoringRun.objects.get()
    assert scored.windows > 0 and scored.readings > 0 and not scored.flagged
    # Years of history imported afterwards: the next scheduled run scores nothing old, the watermark stays.
    old = datetime(2023, 1, 1, tzinfo=UTC)
    Reading.objects.bulk_create([Reading(sensor=sensor, time=old + timedelta(minutes=m), value=50) for m in range(600)])
    result = readings_score_pending(sensors=[sensor], now=END + timedelta(minutes=1))
    assert result.windows == 0
    assert ScoringWatermark.objects.get(sensor=sensor).scored_until == mark
    # The run is logged though it scored nothing; the readings imported are older than its range: none due, no flag.
    idle = ScoringRun.objects.exclude(pk=scored.pk).get()
    assert (idle.windows, idle.readings, idle.start, idle.flagged) == (0, 0, mark, False)
    # A sensor never scored starts SCORING_FIRST_RUN_HOURS back, whatever history it has.
    trained.SCORING_FIRST_RUN_HOURS = 2
    other = Sensor.objects.get(sensor_id="sensor-002")
    # From 22:01: the windows 22:10 to 23:50 (the one from 00:00 is not complete).
    assert readings_score_pending(sensors=[other], now=END + timedelta(minutes=1)).windows == 11


def test_scoring_the_same_windows_again_adds_no_anomaly_and_no_alert(trained):
    """As POST /sensors/{id}/score a minute apart does: the windows are fixed in time, not to the request."""
    trained.ANOMALY_THRESHOLD = 0.0  # every window is an anomaly; the strongest raise alerts
    sensor = Sensor.objects.get(sensor_id="sensor-002")
    first = readings_score(sensors=[sensor], start=END - timedelta(hours=6), end=END)
    stored, alerts = Anomaly.objects.count(), Alert.objects.count()
    assert stored == len(first.anomalies) == first.windows == 36
    Alert.objects.update(status="resolved")
    again = readings_score(sensors=[sensor], start=END - timedelta(hours=6, minutes=-1), end=END + timedelta(minutes=1))
    assert again.windows == 36 and len(again.anomalies) == 36
    assert Anomaly.objects.count() == stored and Alert.objects.count() == alerts
    assert not Alert.objects.exclude(status="resolved").exists()


def test_score_readings_and_train_models_take_asset_and_sensor(trained):
    out = StringIO()
    call_command("score_readings", "--to", "2026-06-01T00:01:00Z", "--sensor", "sensor-003", stdout=out)
    assert list(ScoringWatermark.objects.values_list("sensor__sensor_id", flat=True)) == ["sensor-003"]
    assert set(Anomaly.objects.values_list("sensor__sensor_id", flat=True)) <= {"sensor-003"}
    call_command("score_readings", "--to", "2026-06-01T00:01:00Z", "--asset", "MOTOR-002", stdout=out)
    assert sorted(ScoringWatermark.objects.values_list("sensor__sensor_id", flat=True)) == [
        "sensor-003",
        "sensor-005",
        "sensor-006",
        "sensor-007",
        "sensor-008",
    ]
    with pytest.raises(CommandError, match="Unknown asset code"):
        call_command("score_readings", "--asset", "NOPE-1")
    with pytest.raises(CommandError, match="Unknown sensor ID"):
        call_command("train_models", "--sensor", "nope")
    out = StringIO()
    call_command("train_models", "--asset", "PUMP-001", "--detector", "supervised", stdout=out)
    trained_types = {line.split(" v")[0].rsplit("-", 1)[1] for line in out.getvalue().splitlines()}
    assert trained_types == set(Sensor.objects.filter(asset__code="PUMP-001").values_list("sensor_type", flat=True))

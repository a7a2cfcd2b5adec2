"""A departure below the alert threshold that lasts opens an alert (ANOMALY_ALERT_PERSISTENCE)."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from mlops.choices import AlertKind, AlertSeverity
from mlops.models import Alert, Anomaly
from mlops.services import readings_score, readings_score_pending
from sensors.models import Sensor

pytestmark = pytest.mark.django_db
END = datetime(2026, 6, 1, tzinfo=UTC)
START = END - timedelta(hours=2)  # the first window scored
WINDOW = timedelta(minutes=10)


@pytest.fixture
def trained(mlflow_settings):
    # 8 sensors on 2 assets, 500 readings each a minute apart, ending at END.
    call_command(
        "seed_data", "--sensors", "8", "--readings", "4000", "--anomaly-rate", "0.03", "--end", "2026-06-01T00:00:00Z"
    )
    call_command("train_models", "--promote", stdout=StringIO())
    # Every window scored is stored as an anomaly, and none reaches the alert threshold by its score.
    mlflow_settings.ANOMALY_THRESHOLD = 0.0
    mlflow_settings.ANOMALY_ALERT_THRESHOLD = 2.0
    return mlflow_settings


def _score_through(sensor, windows: int) -> None:
    """The scheduled run at the end of the sensor's ``windows``-th window from START."""
    readings_score_pending(sensors=[sensor], now=START + WINDOW * windows, since=START)


def test_anomalies_in_three_of_a_sensors_last_six_windows_open_one_warning(trained):
    assert trained.ANOMALY_ALERT_PERSISTENCE == 3  # the default
    sensor = Sensor.objects.get(sensor_id="sensor-002")
    _score_through(sensor, 1)
    _score_through(sensor, 2)
    assert Anomaly.objects.filter(sensor=sensor).count() == 2
    assert not Alert.objects.exists()

    # The second window's anomaly is gone (staff deleted it, say): two of the last six, still no alert.
    Anomaly.objects.get(sensor=sensor, start=START + WINDOW).delete()
    _score_through(sensor, 3)
    assert not Alert.objects.exists()

    _score_through(sensor, 4)  # windows 1, 3 and 4 of the last six
    alert = Alert.objects.get()
    fourth = Anomaly.objects.get(sensor=sensor, start=START + WINDOW * 3)
    assert (alert.sensor, alert.kind, alert.severity, alert.anomaly) == (
        sensor,
        AlertKind.ANOMALY,
        AlertSeverity.WARNING,
        fourth,
    )
    assert "in 3 of its last 6 windows" in alert.title
    assert "Below the alert threshold (2), but flagged in 3 of the sensor's last 6 windows." in alert.detail

    # While it lasts, the same alert is refreshed: none other opens.
    _score_through(sensor, 5)
    assert Alert.objects.get() == alert


def test_a_lasting_departure_alone_raises_nothing_when_turned_off(trained):
    trained.ANOMALY_ALERT_PERSISTENCE = 0
    sensor = Sensor.objects.get(sensor_id="sensor-002")
    for windows in range(1, 7):
        _score_through(sensor, windows)
    assert Anomaly.objects.filter(sensor=sensor).count() == 6
    assert not Alert.objects.exists()


def test_one_run_over_hours_opens_the_alert_where_the_departure_became_lasting(trained):
    """As a backlog or a run on request finds them: the alert links the third window, not the run's last."""
    sensor = Sensor.objects.get(sensor_id="sensor-002")
    result = readings_score(sensors=[sensor], start=START, end=START + WINDOW * 6)
    assert result.windows == 6
    alert = Alert.objects.get()
    assert alert.anomaly == Anomaly.objects.get(sensor=sensor, start=START + WINDOW * 2)
    assert alert.severity == AlertSeverity.WARNING and "in 3 of its last 6 windows" in alert.title

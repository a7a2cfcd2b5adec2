"""A technician's finding reaches training: a false alarm becomes a "normal" label, which the next training reads
as normal operation (the normal-behaviour model takes the range back into its baseline; the supervised
detectors count its windows as negatives), so a version trained after the feedback scores that range lower."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from maintenance.choices import FindingOutcome
from maintenance.services import work_order_assign, work_order_raise_from_alert, work_order_record_finding
from mlops import registry
from mlops.evaluation import faults_from_labels, label_windows
from mlops.features import WINDOW, to_us
from mlops.normal_training import train_normal
from readings.choices import FaultKind
from readings.models import FaultLabel, Reading
from tests.factories import AssetFactory, SensorFactory
from tests.maintenance.conftest import make_anomaly, open_alert

END = datetime(2026, 7, 1, tzinfo=UTC)
DAYS = 4
# The false alarm: three hours in which the temperature ran 2.5 degrees higher (a test run staff knew about).
EPISODE = (END - timedelta(days=2) + timedelta(hours=10), END - timedelta(days=2) + timedelta(hours=13))


def seed(asset) -> list:
    rng = np.random.default_rng(7)
    minutes = np.arange(DAYS * 1440)
    times = [END - timedelta(minutes=int(DAYS * 1440 - m)) for m in minutes]
    temperature = 50 + 5 * np.sin(2 * np.pi * minutes / 1440) + rng.normal(0, 0.3, len(minutes))
    current = 30 + rng.normal(0, 1.0, len(minutes))
    inside = np.array([EPISODE[0] <= t < EPISODE[1] for t in times])
    temperature[inside] += 2.5
    temp = SensorFactory(asset=asset, sensor_id="fb-temp", sensor_type="temperature", normal_min=0, normal_max=100)
    amps = SensorFactory(
        asset=asset, sensor_id="fb-current", sensor_type="current", unit="A", normal_min=0, normal_max=60
    )
    Reading.objects.bulk_create(
        [Reading(sensor=temp, time=t, value=float(v)) for t, v in zip(times, temperature, strict=True)]
        + [Reading(sensor=amps, time=t, value=float(v)) for t, v in zip(times, current, strict=True)],
        batch_size=5000,
    )
    return [temp, amps]


def episode_ratio(version: str, asset) -> float:
    """The highest departure from normal the registered ``version`` gives the episode's windows (1: a flag)."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"models:/{registry.normal_model_name()}/{version}")
    readings = Reading.objects.filter(sensor__asset=asset).select_related("sensor")
    frame = pd.DataFrame(
        [
            {"asset": asset.code, "sensor": r.sensor.sensor_id, "time": r.time.replace(tzinfo=None), "value": r.value}
            for r in readings
        ]
    )
    scored = model.predict(frame)
    during = (scored["window_start"] >= pd.Timestamp(EPISODE[0])) & (scored["window_start"] < pd.Timestamp(EPISODE[1]))
    return float(scored.loc[during, "ratio"].max())


@pytest.mark.django_db
def test_a_version_trained_after_false_alarm_feedback_scores_that_range_lower(mlflow_settings, manager, technician):
    asset = AssetFactory(code="FEEDBACK-001", site="North Plant")
    temp, _ = seed(asset)
    # What the plant knew before the feedback: the models flagged the episode (an anomaly, an alert on it), so the
    # normal model's default baseline leaves it out, as it leaves out every known departure.
    anomaly = make_anomaly(temp, start=EPISODE[0], end=EPISODE[1])
    alert = open_alert(temp, anomaly=anomaly)
    before = train_normal(assets=[asset], window=WINDOW)
    ratio_before = episode_ratio(before.version, asset)
    assert ratio_before >= 1  # flagged

    work_order, _ = work_order_raise_from_alert(alert=alert, user=manager)
    work_order_assign(work_order=work_order, assignee=technician, user=manager)
    work_order_record_finding(
        work_order=work_order, user=technician, outcome=FindingOutcome.FALSE_ALARM, cause="Planned test run"
    )
    assert FaultLabel.objects.filter(sensor=temp, kind=FaultKind.NORMAL).count() == 1

    after = train_normal(assets=[asset], window=WINDOW)
    assert before.assets[asset.code]["left_out"] > after.assets[asset.code]["left_out"]
    ratio_after = episode_ratio(after.version, asset)
    # Lower: the episode is part of what normal looks like now (once in four days, it may still stand out).
    assert ratio_after < ratio_before


@dataclass
class _Windows:
    sensor_pk: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def __len__(self):
        return len(self.sensor_pk)


@dataclass
class _Label:
    pk: int
    sensor_id: int
    kind: str
    start: datetime
    end: datetime


def test_supervised_training_reads_normal_labels_as_negatives():
    hour = timedelta(hours=1)
    starts = [END + i * hour for i in range(6)]
    windows = _Windows(
        np.array([1] * 6),
        np.array([to_us(t) for t in starts], dtype="datetime64[us]"),
        np.array([to_us(t + hour - timedelta(seconds=1)) for t in starts], dtype="datetime64[us]"),
    )
    labels = [
        _Label(1, 1, FaultKind.DEGRADATION, starts[0], starts[5]),  # an unlabelled episode: left out...
        _Label(2, 1, FaultKind.NORMAL, starts[1], starts[2]),  # ...but staff found these hours normal
        _Label(3, 1, FaultKind.SPIKE, starts[4], starts[4] + timedelta(minutes=5)),
    ]
    result = label_windows(windows, labels, unlabelled_kinds={FaultKind.DEGRADATION})
    assert result.positive.tolist() == [False, False, False, False, True, False]
    assert result.excluded.tolist() == [True, False, False, True, False, True]
    faults = faults_from_labels(labels, intervals={1: 60}, unlabelled_kinds={FaultKind.DEGRADATION})
    assert faults.kind.tolist() == [FaultKind.SPIKE]


# --- Work orders on an asset, without a sensor -----------------------------------------------------------------


def _asset_work_order(asset, manager, technician):
    from maintenance.services import work_order_create

    work_order = work_order_create(asset=asset, title="Noise from the pump", user=manager)
    work_order_assign(work_order=work_order, assignee=technician, user=manager)
    return work_order


@pytest.mark.django_db
def test_a_false_alarm_on_an_asset_without_sensor_reaches_training_through_every_sensor(
    mlflow_settings, manager, technician
):
    asset = AssetFactory(code="FEEDBACK-002", site="North Plant")
    temp, amps = seed(asset)
    open_alert(temp, anomaly=make_anomaly(temp, start=EPISODE[0], end=EPISODE[1]))
    before = train_normal(assets=[asset], window=WINDOW)
    ratio_before = episode_ratio(before.version, asset)

    # Raised by hand on the asset (the technician heard it; nobody tied it to a sensor), found to be nothing.
    work_order = _asset_work_order(asset, manager, technician)
    finding = work_order_record_finding(
        work_order=work_order,
        user=technician,
        outcome=FindingOutcome.FALSE_ALARM,
        fault_start=EPISODE[0],
        fault_end=EPISODE[1],
        cause="Planned test run",
    )
    labels = FaultLabel.objects.filter(kind=FaultKind.NORMAL, start=EPISODE[0], end=EPISODE[1], source="staff")
    assert sorted(labels.values_list("sensor_id", flat=True)) == sorted([temp.pk, amps.pk])
    assert finding.label in labels

    after = train_normal(assets=[asset], window=WINDOW)
    assert before.assets[asset.code]["left_out"] > after.assets[asset.code]["left_out"]
    assert episode_ratio(after.version, asset) < ratio_before


@pytest.mark.django_db
def test_a_confirmed_fault_on_an_asset_without_sensor_is_left_out_of_training_on_every_sensor(manager, technician):
    from mlops.selectors import UNLABELLED_KINDS

    asset = AssetFactory(code="FEEDBACK-003", site="North Plant")
    temp = SensorFactory(asset=asset, sensor_id="fb3-temp")
    amps = SensorFactory(asset=asset, sensor_id="fb3-current", sensor_type="current", unit="A")
    work_order = _asset_work_order(asset, manager, technician)
    start = END - timedelta(hours=3)
    finding = work_order_record_finding(
        work_order=work_order,
        user=technician,
        outcome=FindingOutcome.CONFIRMED_FAULT,
        fault_kind=FaultKind.SPIKE,
        fault_start=start,
        fault_end=END,
        cause="Loose bearing",
    )
    # The finding keeps the kind recorded; the sensors, which of them showed it being unknown, are labelled as the
    # machine's episode: neither positives of that kind nor normal.
    assert finding.fault_kind == FaultKind.SPIKE
    labels = list(FaultLabel.objects.filter(source="staff").order_by("sensor_id"))
    assert [(label.sensor_id, label.kind, label.start, label.end) for label in labels] == [
        (temp.pk, FaultKind.DEGRADATION, start, END),
        (amps.pk, FaultKind.DEGRADATION, start, END),
    ]
    hour = timedelta(hours=1)
    starts = [start - hour, start, start + hour, start + 2 * hour, END + hour]  # before, three inside, after
    windows = _Windows(
        np.array([temp.pk] * 5 + [amps.pk] * 5),
        np.array([to_us(t) for t in starts] * 2, dtype="datetime64[us]"),
        np.array([to_us(t + hour - timedelta(seconds=1)) for t in starts] * 2, dtype="datetime64[us]"),
    )
    result = label_windows(windows, labels, unlabelled_kinds=UNLABELLED_KINDS)
    assert not result.positive.any()
    assert result.excluded.tolist() == [False, True, True, True, False] * 2
    assert len(faults_from_labels(labels, intervals={temp.pk: 60, amps.pk: 60}, unlabelled_kinds=UNLABELLED_KINDS)) == 0

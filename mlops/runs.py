"""One run of each of the MLOps app's scheduled jobs, shared by its management command and its Celery task.

``score_readings`` and ``mlops.tasks.readings_score_pending`` score through ``scoring_run``; ``train_models`` and
``mlops.tasks.models_retrain`` train through ``training_run``. Each returns a report: the command prints it, the
task returns its ``summary()`` (stored with the task's result).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from mlops import registry
from mlops.registry import MLflowUnavailable
from mlops.scoring import NoChampion, one_run, run_fleet
from mlops.services import (
    WINDOW,
    ScoreResult,
    alerts_notify,
    mail_counts_add,
    models_train,
    models_train_normal,
    readings_score,
    readings_score_pending,
)
from sensors.choices import SensorStatus, SensorType
from sensors.models import Asset, Sensor


@dataclass
class ScoringReport:
    scored: dict[str, ScoreResult] = field(default_factory=dict)  # per sensor type
    no_champion: dict[str, str] = field(default_factory=dict)  # sensor type: why it was not scored
    unavailable: dict[str, MLflowUnavailable] = field(default_factory=dict)  # sensor type: MLflow's error
    mail: dict[str, int] = field(default_factory=dict)  # alerts_notify's counts, summed over the run

    def summary(self) -> dict:
        return {
            "windows": sum(result.windows for result in self.scored.values()),
            "anomalies": sum(len(result.anomalies) for result in self.scored.values()),
            "early": sum(result.early for result in self.scored.values()),
            "types": {
                sensor_type: {"windows": result.windows, "anomalies": len(result.anomalies), "models": result.models}
                for sensor_type, result in self.scored.items()
            },
            "no_champion": sorted(self.no_champion),
            "mlflow_unavailable": sorted(self.unavailable),
            "mail": self.mail,
        }


def scoring_run(
    *,
    sensors: list[Sensor] | None = None,
    types: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    window: int = WINDOW,
) -> ScoringReport:
    """Score ``sensors`` (default: the active ones) type by type, then mail the alerts not mailed yet.

    Without ``start`` the scheduled run: each sensor's ready windows since its watermark, up to ``end`` (default
    now), watermarks moved. With ``start``: the windows overlapping [start, end), on request. A type without a
    champion, or whose model MLflow cannot serve, is reported and the others are scored.
    """
    end = end or timezone.now()
    report, mails = ScoringReport(), []
    # A batch job: MLflow calls may wait and retry longer than in a web request (see settings). One run: each
    # asset is scored by the normal model once, not once per type of sensor on it.
    with registry.command_timeouts(), one_run():
        if sensors is None:  # from the fleet the run reads once anyway (its types' peers, its assets' sensors)
            sensors = [sensor for sensor in run_fleet()[0] if sensor.status == SensorStatus.ACTIVE]
        for sensor_type in types or SensorType.values:
            group = [sensor for sensor in sensors if sensor.sensor_type == sensor_type]
            if not group:
                continue
            try:
                if start is None:
                    result = readings_score_pending(sensors=group, now=end, window=window)
                else:
                    result = readings_score(sensors=group, start=start, end=end, window=window)
            except NoChampion as exc:
                report.no_champion[sensor_type] = str(exc)
                continue
            except MLflowUnavailable as exc:
                report.unavailable[sensor_type] = exc
                continue
            report.scored[sensor_type] = result
            mails.append(result.mail)  # the alerts this type's scoring opened, mailed as it committed them
    mails.append(alerts_notify())
    report.mail = mail_counts_add(*mails)
    return report


@dataclass
class TrainingReport:
    supervised: list = field(default_factory=list)  # models_train's results, one per sensor type
    supervised_skipped: str = ""  # why the supervised detectors were not trained (no labelled faults)
    normal: object | None = None  # models_train_normal's result
    normal_skipped: str = ""  # why the normal-behaviour models were not trained

    def summary(self) -> dict:
        return {
            "supervised": [
                {
                    "model": f"{result.model_name} v{result.version}",
                    "f1": round(result.scores.f1, 4),
                    "promoted": result.promoted,
                }
                for result in self.supervised
            ],
            "supervised_skipped": self.supervised_skipped,
            "normal": None
            if self.normal is None
            else {"model": f"{self.normal.model_name} v{self.normal.version}", "assets": len(self.normal.assets)},
            "normal_skipped": self.normal_skipped,
        }


def training_run(
    *,
    detector: str = "all",
    types: list[str] | None = None,
    sensors: list[Sensor] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    baseline: tuple[datetime, datetime] | None = None,
    window: int = WINDOW,
    promote: bool = False,
    seed: int = 0,
) -> TrainingReport:
    """Train the supervised detectors per sensor type and/or the normal-behaviour models per asset.

    ``detector`` "all" trains both, and a kind that cannot be trained (no labelled faults, no baseline) is noted
    in the report instead of failing the run; "supervised" or "normal" alone raise its ValueError. MLflow being
    unreachable raises MLflowUnavailable either way. ``sensors`` limits training to them (their assets' other
    sensors are read as peers).
    """
    report = TrainingReport()
    with registry.command_timeouts():
        if detector in ("all", "supervised"):
            try:
                report.supervised = models_train(
                    sensor_types=types or None,
                    sensors=sensors,
                    start=start,
                    end=end,
                    window=window,
                    promote=promote,
                    seed=seed,
                )
            except ValueError as exc:
                if detector != "all" or not str(exc).startswith("No labelled faults"):
                    raise
                report.supervised_skipped = str(exc)
        if detector in ("all", "normal"):
            if sensors is None:
                assets = list(Asset.objects.filter(sensors__isnull=False).distinct().order_by("code"))
            else:
                assets = list(Asset.objects.filter(pk__in={sensor.asset_id for sensor in sensors}).order_by("code"))
            first, last = baseline or (None, None)
            try:
                report.normal = models_train_normal(
                    assets=assets, sensors=sensors, start=first, end=last, window=window
                )
            except ValueError as exc:
                if detector != "all":
                    raise
                report.normal_skipped = str(exc)
    return report

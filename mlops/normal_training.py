"""Fitting and registering the normal-behaviour models (``mlops.normal``), one per asset, in one MLflow model.

Decision: one registered model, ``<MLFLOW_MODEL_PREFIX>-normal``, whose versions hold the normal models of every
asset trained so far (plain JSON parameters, no pickled code). Not one registered model per asset: a plant with
300 assets would have 300 registry entries to browse, 300 aliases to move and 300 model loads per scoring
process; one version loaded once scores the whole fleet. Training some assets (``--asset``) registers a new
version that carries the other assets' models over from the champion unchanged, so the aliases, the version
history and the loading cache work as for the supervised detectors.

Kept apart from ``mlops.services`` because MLflow takes seconds to import.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from django.conf import settings
from django.db.models import Max, Q

from mlops import registry
from mlops.choices import AlertStatus
from mlops.evaluation import NORMAL_KINDS
from mlops.features import Series, to_aware, to_us
from mlops.models import Alert, Anomaly
from mlops.normal import SENSOR_FEATURES, AssetFrame, AssetModel, asset_frame
from mlops.selectors import fault_labels, sensor_series
from readings.models import Reading
from sensors.models import Asset, Sensor

FLEET_FILE = "normal_fleet.json"


@dataclass
class NormalTrainingResult:
    model_name: str
    version: str
    run_id: str
    assets: dict[str, dict]  # asset code -> {"windows": baseline windows, "start", "end", "sensors"}
    skipped: dict[str, str]  # asset code -> why it has no model


class NormalFleetModel(mlflow.pyfunc.PythonModel):
    """The registered model: every asset's normal model. ``predict`` takes readings in long form.

    Input: a DataFrame with columns ``asset`` (code), ``sensor`` (ID), ``time`` and ``value``; output: one row per
    asset and window with ``ratio`` (the departure from normal over its threshold: 1.0 and above is an anomaly).
    The product scores through ``mlops.scoring``; this makes the registered model usable on its own too.
    """

    fleet: dict

    def load_context(self, context) -> None:
        self.fleet = json.loads(Path(context.artifacts["fleet"]).read_text())

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        rows = []
        for code, readings in model_input.groupby("asset"):
            entry = self.fleet["assets"].get(code)
            if entry is None:
                continue
            frame = frame_from_long(readings, entry, window=self.fleet["window"])
            scores = AssetModel(entry["model"]).score(frame)
            rows += [
                {"asset": code, "window_start": pd.Timestamp(start, tz="UTC"), "ratio": float(ratio)}
                for start, ratio in zip(frame.slot_start, scores.ratio, strict=True)
            ]
        return pd.DataFrame(rows, columns=["asset", "window_start", "ratio"])


def frame_from_long(readings: pd.DataFrame, entry: dict, *, window: int) -> AssetFrame:
    series = []
    for sensor_id, interval in zip(entry["model"]["sensors"], entry["intervals"], strict=True):
        mine = readings[readings["sensor"] == sensor_id].sort_values("time")
        times = pd.to_datetime(mine["time"], utc=True).dt.tz_localize(None).to_numpy().astype("datetime64[us]")
        series.append(Series(0, "", interval, None, None, times, mine["value"].to_numpy(float), np.ones(len(mine))))
    return asset_frame(series, list(entry["model"]["sensors"]), window=window)


def baseline_period(asset: Asset, *, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime, bool]:
    """(start, end, chosen): the period the asset's normal model learns from.

    ``start``/``end`` given (``--baseline``) win; then the asset's own baseline set by staff; else the asset's
    recent history, NORMAL_BASELINE_DAYS up to its latest reading (``chosen`` False: the training leaves out
    what the plant already knows is not normal).
    """
    if start is not None or end is not None:
        return start or datetime(1970, 1, 1, tzinfo=UTC), end or datetime.now(UTC), True
    if asset.baseline_start is not None or asset.baseline_end is not None:
        return asset.baseline_start or datetime(1970, 1, 1, tzinfo=UTC), asset.baseline_end or datetime.now(UTC), True
    latest = Reading.objects.filter(sensor__asset=asset).aggregate(latest=Max("time"))["latest"]
    if latest is None:
        return datetime.now(UTC), datetime.now(UTC), False
    end = latest + timedelta(microseconds=1)
    return end - timedelta(days=settings.NORMAL_BASELINE_DAYS), end, False


def excluded_spans(sensors: list[Sensor], start: datetime, end: datetime, *, chosen: bool, labels: list) -> list[tuple]:
    """Spans (start, end) of the baseline period that are not normal: ``labels`` (the sensors' fault labels of the
    period, every kind), and unless staff chose the period, the alerts (open or resolved) and anomalies found on
    the asset's sensors."""
    pks = [sensor.pk for sensor in sensors]
    spans = [(label.start, label.end) for label in labels]
    if not chosen:
        spans += list(Anomaly.objects.filter(sensor__in=pks, end__gte=start, start__lt=end).values_list("start", "end"))
        alerts = Alert.objects.filter(sensor__in=pks, opened_at__lt=end).filter(
            Q(resolved_at__isnull=True) | Q(resolved_at__gte=start)
        )
        for alert in alerts.only("opened_at", "last_seen_at", "resolved_at", "status"):
            finish = alert.resolved_at if alert.status == AlertStatus.RESOLVED and alert.resolved_at else end
            # An alert opens when its condition is seen, which may be a window after it began.
            spans.append((alert.opened_at - timedelta(hours=1), max(finish, alert.last_seen_at)))
    return spans


def _normal_rows(frame: AssetFrame, spans: list[tuple]) -> np.ndarray:
    keep = np.ones(len(frame), dtype=bool)
    for begin, finish in spans:
        b, f = to_us(begin), to_us(finish)
        keep &= ~((frame.slot_start <= f) & (frame.slot_end > b))
    return keep


def _subset(frame: AssetFrame, rows: np.ndarray) -> AssetFrame:
    return AssetFrame(frame.sensors, frame.slot_start[rows], frame.slot_end[rows], frame.X[rows], frame.count[rows])


def _resolution(item: Series) -> float:
    """The sensor's smallest step between distinct readings (its resolution), 0 when unknown."""
    distinct = np.unique(item.values)
    steps = np.diff(distinct)
    steps = steps[steps > 0]
    return float(steps.min()) if len(steps) >= 3 else 0.0


def fit_asset(
    asset: Asset, sensors: list[Sensor], *, start: datetime | None, end: datetime | None, window: int
) -> tuple[dict | None, str]:
    """(the asset's fleet entry, or None with the reason) from its baseline."""
    begin, finish, chosen = baseline_period(asset, start=start, end=end)
    series = sensor_series(sensors=sensors, start=begin, end=finish)
    by_pk = {item.sensor_pk: item for item in series}
    present = [sensor for sensor in sensors if sensor.pk in by_pk]
    if not present:
        return None, f"no readings from {begin:%Y-%m-%d %H:%M} to {finish:%Y-%m-%d %H:%M} UTC"
    chosen_series = [by_pk[sensor.pk] for sensor in present]
    frame = asset_frame(chosen_series, [sensor.sensor_id for sensor in present], window=window)
    every_label = fault_labels(sensor_pks=[sensor.pk for sensor in present], start=begin, end=finish)
    labels = [label for label in every_label if label.kind not in NORMAL_KINDS]
    keep = _normal_rows(frame, excluded_spans(present, begin, finish, chosen=chosen, labels=labels))
    # Staff's false alarms (work order findings) were normal operation, whatever anomalies and alerts said of
    # them: back in the baseline, unless a labelled fault overlaps them.
    false_alarms = [(label.start, label.end) for label in every_label if label.kind in NORMAL_KINDS]
    if false_alarms:
        keep |= ~_normal_rows(frame, false_alarms) & _normal_rows(frame, [(item.start, item.end) for item in labels])
    baseline = _subset(frame, keep)
    try:
        model = AssetModel.fit(
            baseline,
            false_alarm_rate=settings.NORMAL_FALSE_ALARM_RATE,
            resolution={sensor.sensor_id: _resolution(by_pk[sensor.pk]) for sensor in present},
        )
    except ValueError as exc:
        return None, str(exc)
    evaluation = _evaluate(model, frame, keep, present, labels)
    return {
        "model": model.params,
        "intervals": [sensor.sampling_interval for sensor in present],
        "baseline": {
            "start": to_aware(baseline.slot_start[0]).isoformat(),
            "end": to_aware(baseline.slot_end[-1]).isoformat(),
            "windows": len(baseline),
            "left_out": int((~keep).sum()),
            "chosen": chosen,
        },
        "trained_at": datetime.now(UTC).isoformat(),
        "evaluation": evaluation,
    }, ""


def _evaluate(model: AssetModel, frame: AssetFrame, normal: np.ndarray, sensors: list[Sensor], labels) -> dict:
    """How the fitted model does on the training period: per fault kind, the labelled faults it flags on their
    sensor (a window of the sensor over its threshold overlapping the fault), and its false alarms per sensor-week
    on the baseline windows (in-sample: a floor of what to expect, not a promise)."""
    from mlops.selectors import UNLABELLED_KINDS

    scores = model.score(frame)
    flagged = scores.sensor_ratio >= 1
    column = {sensor.pk: index for index, sensor in enumerate(sensors)}
    kinds: dict[str, list[int]] = {}
    for label in labels:
        if label.kind in UNLABELLED_KINDS or label.kind in NORMAL_KINDS or label.sensor_id not in column:
            continue
        begin, finish = to_us(label.start), to_us(label.end)
        rows = (frame.slot_start <= finish) & (frame.slot_end > begin)
        found = bool(flagged[rows, column[label.sensor_id]].any())
        kinds.setdefault(label.kind, [0, 0])
        kinds[label.kind][0] += 1
        kinds[label.kind][1] += found
    span = (frame.slot_end - frame.slot_start)[normal].sum() / np.timedelta64(7, "D") if normal.any() else 0.0
    false_alarms = int(flagged[normal].sum())
    return {
        "faults": {kind: {"labelled": total, "flagged": hit} for kind, (total, hit) in kinds.items()},
        "false_alarms": false_alarms,
        "sensor_weeks": round(float(span) * len(sensors), 3),
    }


def _champion_fleet(mlflow_client, name: str) -> dict | None:
    try:
        version = mlflow_client.get_model_version_by_alias(name, registry.CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    from mlops.scoring import load_normal_fleet

    return load_normal_fleet(name, version.version)


def train_normal(
    *,
    assets: list[Asset],
    sensors: list[Sensor] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    window: int,
) -> NormalTrainingResult:
    """Fit the normal model of each of ``assets`` (on ``sensors`` of them, default all) and register a version.

    The new version holds these assets' new models and the champion's models of every other asset; it becomes
    champion at once (what normal looks like now replaces what it looked like before), with the reason tagged.
    """
    name = registry.normal_model_name()
    mlflow_client = registry.client()
    previous = _champion_fleet(mlflow_client, name)
    fleet = {"window": window, "assets": {}}
    if previous and previous.get("window") == window:
        fleet["assets"].update(previous["assets"])
    fitted, skipped = {}, {}
    for asset in assets:
        mine = [s for s in (sensors or asset.sensors.all()) if s.asset_id == asset.pk]
        mine.sort(key=lambda sensor: sensor.pk)
        entry, why = fit_asset(asset, mine, start=start, end=end, window=window)
        if entry is None:
            skipped[asset.code] = why
            continue
        fleet["assets"][asset.code] = entry
        fitted[asset.code] = {**entry["baseline"], "sensors": len(entry["model"]["sensors"])}
    if not fitted:
        reasons = "; ".join(f"{code}: {why}" for code, why in skipped.items())
        raise ValueError(f"No normal model could be fitted: {reasons or 'no assets chosen'}.")

    with (
        tempfile.TemporaryDirectory() as folder,
        mlflow.start_run(experiment_id=registry.experiment_id(), run_name="train normal") as run,
    ):
        path = Path(folder) / FLEET_FILE
        path.write_text(json.dumps(fleet))
        mlflow.log_params(
            {
                "detector": "normal",
                "window": window,
                "assets_trained": ",".join(sorted(fitted))[:500],
                "assets_total": len(fleet["assets"]),
                "false_alarm_rate": settings.NORMAL_FALSE_ALARM_RATE,
                "baseline": f"{start.isoformat()} to {end.isoformat()}"
                if start or end
                else f"asset baselines or last {settings.NORMAL_BASELINE_DAYS} days",
            }
        )
        faults: dict[str, list[int]] = {}
        false_alarms = sensor_weeks = 0.0
        for code in fitted:
            evaluation = fleet["assets"][code]["evaluation"]
            false_alarms += evaluation["false_alarms"]
            sensor_weeks += evaluation["sensor_weeks"]
            for kind, counts in evaluation["faults"].items():
                totals = faults.setdefault(kind, [0, 0])
                totals[0] += counts["labelled"]
                totals[1] += counts["flagged"]
        # Per fault kind: the share of the labelled faults of the training period the model flags (it never saw
        # them: they are left out of its baseline), and the in-sample false alarms per sensor-week.
        mlflow.log_metrics({f"recall_{kind}": hit / total for kind, (total, hit) in faults.items() if total})
        mlflow.log_metrics({f"faults_{kind}": float(total) for kind, (total, _) in faults.items()})
        if sensor_weeks:
            mlflow.log_metric("baseline_false_alarms_per_sensor_week", false_alarms / sensor_weeks)
        mlflow.log_metrics(
            {
                "assets_trained": float(len(fitted)),
                "assets_skipped": float(len(skipped)),
                "baseline_windows": float(sum(item["windows"] for item in fitted.values())),
            }
        )
        mlflow.log_dict({"trained": fitted, "skipped": skipped}, "baselines.json")
        example = _input_example(fleet, next(iter(fitted)))
        model = NormalFleetModel()
        model.fleet = fleet
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            artifacts={"fleet": str(path)},
            input_example=example,
            signature=mlflow.models.infer_signature(example, model.predict(None, example)),
            pip_requirements=[f"numpy=={np.__version__}", f"pandas=={pd.__version__}"],
        )
        run_id = run.info.run_id
    if not mlflow_client.search_registered_models(filter_string=f"name = '{name}'"):
        mlflow_client.create_registered_model(
            name, description="Normal behaviour of each asset (unsupervised; see mlops.normal): one version for all."
        )
    reason = f"refitted {len(fitted)} asset(s) on their baselines; {len(fleet['assets']) - len(fitted)} carried over"
    version = mlflow.register_model(info.model_uri, name, tags={registry.PROMOTION_TAG: f"promoted: {reason}"}).version
    mlflow_client.set_registered_model_alias(name, registry.CHALLENGER, version)
    mlflow_client.set_registered_model_alias(name, registry.CHAMPION, version)
    return NormalTrainingResult(name, str(version), run_id, fitted, skipped)


def _input_example(fleet: dict, code: str) -> pd.DataFrame:
    """A few readings of one asset (its baseline's centre values), in the model's input form."""
    entry = fleet["assets"][code]
    params = entry["model"]
    start = pd.Timestamp(entry["baseline"]["start"]).tz_convert(None)  # naive UTC: MLflow schemas take no zone
    rows = []
    for i, (sensor, interval) in enumerate(zip(params["sensors"], entry["intervals"], strict=True)):
        level = params["centres"][i * len(SENSOR_FEATURES) + SENSOR_FEATURES.index("level")]
        rows += [
            {"asset": code, "sensor": sensor, "time": start + pd.Timedelta(seconds=interval * k), "value": level}
            for k in range(fleet["window"])
        ]
    return pd.DataFrame(rows)

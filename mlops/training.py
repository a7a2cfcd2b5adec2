"""Training, evaluating and registering the per-type detectors (scikit-learn, pandas and MLflow).

Kept apart from ``mlops.services`` because these libraries take seconds to
import: every command and web worker would pay for them otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import mlflow
import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GroupKFold

from mlops import registry
from mlops.evaluation import Scores, label_windows, score_detections
from mlops.features import FEATURES, WINDOW, build_windows
from mlops.selectors import UNLABELLED_KINDS, fault_labels, sensor_series
from sensors.models import Sensor

# Windows of the model's own sensor type weigh this much more than the rest of
# the fleet's: each type gets its own detector, and still learns from faults
# seen on other types (the features are scale-free) when its own are few.
OWN_TYPE_WEIGHT = 5.0
DECISION_THRESHOLD = 0.5
# Normal windows are plentiful and alike: beyond this many, a seeded sample of
# them (all fault windows kept) trains each model, which keeps training on
# millions of readings in minutes without changing what is evaluated.
MAX_NORMAL_TRAINING_WINDOWS = 20_000


@dataclass
class TrainingResult:
    sensor_type: str
    model_name: str
    version: str
    run_id: str
    scores: Scores
    champion_f1: float | None
    promoted: bool
    windows: int


def _classifier(seed: int) -> RandomForestClassifier:
    return RandomForestClassifier(
        n_estimators=100, min_samples_leaf=1, class_weight="balanced_subsample", random_state=seed, n_jobs=1
    )


def _frame(X: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(X, columns=list(FEATURES))


def _training_rows(y: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """``rows`` with every fault window and at most MAX_NORMAL_TRAINING_WINDOWS normal ones."""
    normal = rows[y[rows] == 0]
    if len(normal) <= MAX_NORMAL_TRAINING_WINDOWS:
        return rows
    kept = np.random.default_rng(seed).choice(normal, MAX_NORMAL_TRAINING_WINDOWS, replace=False)
    return np.sort(np.concatenate([rows[y[rows] == 1], kept]))


def _fit(X, y, weights, rows, seed: int) -> RandomForestClassifier:
    rows = _training_rows(y, rows, seed)
    return _classifier(seed).fit(_frame(X[rows]), y[rows], sample_weight=weights[rows])


TIME_BLOCKS = 5


def _time_blocks(starts: np.ndarray) -> np.ndarray:
    """Cut the range into TIME_BLOCKS contiguous periods with as many windows each."""
    stamps = starts.astype(np.int64)
    edges = np.quantile(stamps, np.linspace(0, 1, TIME_BLOCKS + 1)[1:-1])
    return np.searchsorted(edges, stamps)


def _out_of_fold(X, y, weights, groups, *, seed: int) -> np.ndarray:
    """Probabilities for every window from a model that never saw that window's group (its period of time).

    Blocked by time, as the model will be used: trained on the fleet's past
    (its own sensors included) and applied to a period it has not seen.
    """
    folds = min(TIME_BLOCKS, len(set(groups.tolist())))
    probabilities = np.zeros(len(y))
    if folds < 2 or y.sum() == 0:
        return probabilities
    for train, test in GroupKFold(n_splits=folds).split(X, y, groups):
        if y[train].sum() == 0:
            continue
        probabilities[test] = _fit(X, y, weights, train, seed).predict_proba(_frame(X[test]))[:, 1]
    return probabilities


def train_and_register(
    *,
    sensor_types: list[str] | None = None,
    sensors: list[Sensor] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    window: int = WINDOW,
    promote: bool = False,
    seed: int = 0,
) -> list[TrainingResult]:
    """Train, evaluate and register one anomaly detector per sensor type.

    Evaluation is out-of-fold by period (blocked cross-validation over time):
    every window is scored by a model that never saw its period, against the
    faults ``seed_data`` (or staff) recorded. ``sensors`` limits the windows trained and evaluated on to
    theirs (default: every sensor's). The new version gets the alias ``challenger``, and
    ``champion`` when it beats the current champion's F1 on the same windows,
    when there is no champion yet, or when ``promote`` is set.
    """
    chosen = Sensor.objects.all() if sensors is None else Sensor.objects.filter(pk__in=[s.pk for s in sensors])
    # The peers of the chosen sensors (the other sensors of their types) are read for the features only.
    everyone = list(Sensor.objects.filter(sensor_type__in=chosen.values("sensor_type")).order_by("pk"))
    series = sensor_series(sensors=everyone, start=start, end=end)
    if not any(len(item.times) for item in series):
        raise ValueError("No readings in the chosen range: seed or ingest readings first.")
    windows = build_windows(series, window=window)
    chosen_pks = set(chosen.values_list("pk", flat=True))
    windows = windows.subset(np.isin(windows.sensor_pk, list(chosen_pks)))
    labels = label_windows(
        windows,
        fault_labels(sensor_pks=sorted(chosen_pks), start=start, end=end),
        unlabelled_kinds=UNLABELLED_KINDS,
    )
    usable = ~labels.excluded
    windows = windows.subset(usable)
    fault = labels.fault[usable]
    y = (fault >= 0).astype(int)
    if y.sum() == 0:
        raise ValueError("No labelled faults in the chosen range: a detector cannot be evaluated without them.")

    blocks = _time_blocks(windows.start)
    types = sorted(set(windows.sensor_type.tolist()))
    wanted = [t for t in (sensor_types or types) if t in types]
    experiment = registry.experiment_id()
    mlflow_client = registry.client()
    results = []
    for sensor_type in wanted:
        own = windows.sensor_type == sensor_type
        weights = np.where(own, OWN_TYPE_WEIGHT, 1.0)
        probabilities = _out_of_fold(windows.X, y, weights, blocks, seed=seed)
        scores = score_detections(probabilities[own] >= DECISION_THRESHOLD, fault[own], windows.sensor_pk[own])
        model = _fit(windows.X, y, weights, np.arange(len(y)), seed)
        name = registry.model_name(sensor_type)
        champion_f1, challenger_f1 = _champion_comparison(mlflow_client, name, windows, own, fault, probabilities)

        with mlflow.start_run(experiment_id=experiment, run_name=f"train {sensor_type}") as run:
            mlflow.log_params(
                {
                    "sensor_type": sensor_type,
                    "window": window,
                    "features": ",".join(FEATURES),
                    "start": start.isoformat() if start else "all",
                    "sensors": "all" if sensors is None else ",".join(sorted(s.sensor_id for s in sensors))[:500],
                    "end": end.isoformat() if end else "all",
                    "own_type_weight": OWN_TYPE_WEIGHT,
                    "decision_threshold": DECISION_THRESHOLD,
                    "model": "RandomForestClassifier",
                    "n_estimators": model.n_estimators,
                    "max_normal_training_windows": MAX_NORMAL_TRAINING_WINDOWS,
                    "seed": seed,
                    "trained_until": str(windows.end.max()) + "+00:00",
                    "evaluation": f"out-of-fold over {TIME_BLOCKS} time blocks; fault recall, alarm precision",
                }
            )
            mlflow.log_metrics(
                {
                    **scores.as_metrics(),
                    "windows": float(own.sum()),
                    "fleet_windows": float(len(y)),
                    "fleet_faults": float(len(set(fault[fault >= 0].tolist()))),
                }
            )
            info = _log_model(model, windows.X[own] if own.any() else windows.X)
            run_id = run.info.run_id
        _ensure_registered(mlflow_client, name, sensor_type)
        version = mlflow.register_model(
            info.model_uri, name, tags={"f1": f"{scores.f1:.4f}", "sensor_type": sensor_type}
        ).version
        mlflow_client.set_registered_model_alias(name, registry.CHALLENGER, version)
        promoted = promote or champion_f1 is None or (challenger_f1 is not None and challenger_f1 > champion_f1)
        if promoted:
            mlflow_client.set_registered_model_alias(name, registry.CHAMPION, version)
        results.append(
            TrainingResult(sensor_type, name, str(version), run_id, scores, champion_f1, promoted, int(own.sum()))
        )
    return results


def _ensure_registered(mlflow_client, name: str, sensor_type: str) -> str:
    if not mlflow_client.search_registered_models(filter_string=f"name = '{name}'"):
        mlflow_client.create_registered_model(
            name, description=f"Anomaly detector for {sensor_type} sensors (windowed features, random forest)."
        )
    return name


def _log_model(model: RandomForestClassifier, X: np.ndarray):
    import skops.io

    example = _frame(X[:5])
    signature = mlflow.models.infer_signature(example, model.predict_proba(example))
    # MLflow 3 stores scikit-learn models with skops and refuses to load types
    # it does not trust; ours are scikit-learn's own, declared here by name.
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        pip_requirements=[
            f"scikit-learn=={sklearn.__version__}",
            f"numpy=={np.__version__}",
            f"pandas=={pd.__version__}",
            f"skops=={skops.__version__}",
        ],
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=trusted,
        pyfunc_predict_fn="predict_proba",
    )


def _champion_comparison(mlflow_client, name, windows, own, fault, probabilities) -> tuple[float | None, float | None]:
    """(champion F1, challenger F1) on the same windows: those newer than the champion's training data.

    The champion cannot be scored fairly on windows it was trained on, so the
    comparison uses only later windows, with the challenger's out-of-fold
    predictions there. (None, None) without a champion; (F1, None) when there
    are no newer windows with faults, in which case the champion stays.
    """
    try:
        version = mlflow_client.get_model_version_by_alias(name, registry.CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None, None
    run = mlflow_client.get_run(version.run_id)
    trained_until = run.data.params.get("trained_until")
    unseen = own.copy()
    if trained_until:
        unseen &= windows.start > np.datetime64(trained_until.replace("+00:00", ""), "us")
    if not (fault[unseen] >= 0).any():
        return float(run.data.metrics.get("f1", 0.0)), None
    # Loaded (downloaded from the artifact store) only when there is something to score it on.
    champion = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
    predicted = champion.predict_proba(_frame(windows.X[unseen]))[:, 1] >= DECISION_THRESHOLD
    champion_f1 = score_detections(predicted, fault[unseen], windows.sensor_pk[unseen]).f1
    challenger_f1 = score_detections(
        probabilities[unseen] >= DECISION_THRESHOLD, fault[unseen], windows.sensor_pk[unseen]
    ).f1
    return champion_f1, challenger_f1

"""Training, evaluating and registering the per-type detectors (scikit-learn, pandas and MLflow).

Kept apart from ``mlops.services`` because these libraries take seconds to
import: every command and web worker would pay for them otherwise.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
import sklearn
from django.conf import settings
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GroupKFold

from mlops import forest, registry
from mlops.evaluation import Faults, Scores, faults_from_labels, label_windows, score_detections
from mlops.features import FEATURES, WINDOW, Windows, build_windows, span_of
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
# Windows each tree is grown on (a bootstrap sample of this size, not of all the training windows) once there are
# more: a tree's cost grows with its sample, and 100 trees on 2,000 windows each find as much as on 20,000 each.
# On 1 M readings (91,000 windows, 1,300 with a fault; 48 forests: 8 types x 5 folds and the final fit) the
# forests took 185 s with the whole sample per tree and 25 s with 2,000 (40 s on a busy machine); out of fold,
# faults found 237 -> 238 of 238, alarms 302 -> 290 of which true 256 -> 259, every type's F1 as high or higher
# but pressure's (0.988 -> 0.976). Small fleets (the default one has 1,900 windows) train exactly as before.
MAX_TREE_SAMPLES = 2_000


@dataclass
class Comparison:
    """The champion and the challenger scored on the same windows: the type's windows newer than the champion's
    training data (the challenger's out-of-fold predictions there). ``note`` says why there are no scores."""

    champion_version: str
    after: str | None = None  # the end of the champion's training data, "2026-11-20 00:00 UTC"
    windows: int = 0
    champion: Scores | None = None
    challenger: Scores | None = None
    note: str = ""

    def metrics(self) -> dict[str, float]:
        if self.champion is None or self.challenger is None:
            return {}
        return {
            "newest_windows": float(self.windows),
            "newest_faults": float(self.challenger.faults),
            "newest_f1": self.challenger.f1,
            "newest_champion_f1": self.champion.f1,
        }


@dataclass
class TrainingResult:
    sensor_type: str
    model_name: str
    version: str
    run_id: str
    scores: Scores
    comparison: Comparison | None
    promoted: bool
    promotion: str  # why the version was made champion or not, as tagged on the version in MLflow
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


def training_jobs() -> int:
    """Threads that grow a forest's trees: TRAINING_JOBS, or one per CPU this process may use (0, the default).

    The CPUs it may use as joblib counts them (scikit-learn's own parallelism): the machine's, narrowed by the
    process's CPU affinity and by a container's CPU quota (a worker limited to 1 CPU on a 16-core host gets 1).
    """
    if settings.TRAINING_JOBS > 0:
        return settings.TRAINING_JOBS
    return joblib.cpu_count()


def _fit(X, y, weights, rows, seed: int) -> RandomForestClassifier:
    """A forest on ``rows`` (see _training_rows), its trees grown on TRAINING_JOBS threads.

    Most of a tree's fitting is scikit-learn's own work on every training window (it draws the tree's bootstrap,
    weighs it and encodes the labels over all of them, not only the MAX_TREE_SAMPLES drawn), and most of that
    releases the GIL: on 2 cores, 2 threads fit a forest 1.9 times as fast (measured). The trees do not depend on
    the number of threads (their seeds are drawn before they are shared out); predictions do, in their last bits
    (threads add the trees' votes in the order they finish), so the model is returned with n_jobs 1, and every
    prediction, out-of-fold here and after loading, adds its trees in one order.
    """
    rows = _training_rows(y, rows, seed)
    model = _classifier(seed)
    if len(rows) > MAX_TREE_SAMPLES:
        model.set_params(max_samples=MAX_TREE_SAMPLES)
    model.set_params(n_jobs=training_jobs())
    model.fit(_frame(X[rows]), y[rows], sample_weight=weights[rows])
    return model.set_params(n_jobs=1)


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
        probabilities[test] = forest.probabilities(_fit(X, y, weights, train, seed), _frame(X[test]))[:, 1]
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
    faults ``seed_data`` (or staff) recorded, by the event rule of ``score_detections`` (recall per fault kind
    and the median detection delay included). ``sensors`` limits the windows trained and evaluated on to
    theirs (default: every sensor's). The new version gets the alias ``challenger``, and
    ``champion`` when it beats the current champion's F1 on the same windows (the newest, see
    ``_champion_comparison``), when there is no champion yet, or when ``promote`` is set; the reason is tagged
    on the version (``registry.PROMOTION_TAG``).
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
    recorded = fault_labels(sensor_pks=sorted(chosen_pks), start=start, end=end)
    labels = label_windows(windows, recorded, unlabelled_kinds=UNLABELLED_KINDS)
    usable = ~labels.excluded
    windows = windows.subset(usable)
    fault = labels.fault[usable]
    intervals = {sensor.pk: sensor.sampling_interval for sensor in everyone}
    faults = faults_from_labels(recorded, intervals=intervals, unlabelled_kinds=UNLABELLED_KINDS)
    ends = _window_ends(windows, intervals, window)
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
        scores = _scores(probabilities[own] >= DECISION_THRESHOLD, windows, ends, own, faults)
        model = _fit(windows.X, y, weights, np.arange(len(y)), seed)
        name = registry.model_name(sensor_type)
        comparison = _champion_comparison(mlflow_client, name, windows, ends, own, faults, probabilities)
        promoted, promotion = _promotion(comparison, promote=promote)

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
                    "max_tree_samples": MAX_TREE_SAMPLES,
                    "seed": seed,
                    "trained_until": str(windows.end.max()) + "+00:00",
                    "evaluation": f"out-of-fold over {TIME_BLOCKS} time blocks; events by the rule of "
                    "mlops.evaluation.score_detections (docs/mlops.md)",
                }
            )
            mlflow.log_metrics(
                {
                    **scores.as_metrics(),
                    **(comparison.metrics() if comparison else {}),
                    "windows": float(own.sum()),
                    "fleet_windows": float(len(y)),
                    "fleet_faults": float(len(set(fault[fault >= 0].tolist()))),
                }
            )
            info = _log_model(model, windows.X[own] if own.any() else windows.X)
            run_id = run.info.run_id
        _ensure_registered(mlflow_client, name, sensor_type)
        version = mlflow.register_model(
            info.model_uri,
            name,
            tags={"f1": f"{scores.f1:.4f}", "sensor_type": sensor_type, registry.PROMOTION_TAG: promotion},
        ).version
        mlflow_client.set_registered_model_alias(name, registry.CHALLENGER, version)
        if promoted:
            mlflow_client.set_registered_model_alias(name, registry.CHAMPION, version)
        results.append(
            TrainingResult(
                sensor_type, name, str(version), run_id, scores, comparison, promoted, promotion, int(own.sum())
            )
        )
    return results


def _ensure_registered(mlflow_client, name: str, sensor_type: str) -> str:
    if not mlflow_client.search_registered_models(filter_string=f"name = '{name}'"):
        mlflow_client.create_registered_model(
            name, description=f"Anomaly detector for {sensor_type} sensors (windowed features, random forest)."
        )
    return name


# Per model class: the types skops lists as untrusted in a fitted model of it (see _trusted_types).
_TRUSTED_TYPES: dict[type, list[str]] = {}


def _trusted_types(model) -> list[str]:
    """The types skops must be told to trust to load ``model``, listed once per process and model class.

    Listing them serialises the whole forest (0.2-0.3 s a forest); every forest trained here holds the same types
    (scikit-learn's tree and forest classes and numpy's), whatever it learnt. Should one ever hold another,
    MLflow's check of the input example at logging (it loads the model back) fails the run loudly.
    """
    import skops.io

    if type(model) not in _TRUSTED_TYPES:
        _TRUSTED_TYPES[type(model)] = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return _TRUSTED_TYPES[type(model)]


def _log_model(model: RandomForestClassifier, X: np.ndarray):
    import skops.io

    example = _frame(X[:5])
    signature = mlflow.models.infer_signature(example, model.predict_proba(example))
    # MLflow 3 stores scikit-learn models with skops and refuses to load types
    # it does not trust; ours are scikit-learn's own, declared here by name.
    trusted = _trusted_types(model)
    with tempfile.TemporaryDirectory() as folder:
        # Beside the scikit-learn flavour, the trees as plain arrays: what scoring loads (see mlops.forest).
        extra_files = []
        if forest.exportable(model):
            path = Path(folder) / forest.FILE
            path.write_bytes(forest.forest_bytes(model))
            extra_files.append(str(path))
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
            extra_files=extra_files or None,
        )


def _window_ends(windows: Windows, intervals: dict[int, int], window: int) -> np.ndarray:
    """The end of each window's fixed time range: its slot start plus ``window`` x its sensor's interval."""
    spans = {pk: span_of(interval, window) for pk, interval in intervals.items()}
    return windows.slot_start + np.array([spans[pk] for pk in windows.sensor_pk.tolist()], dtype="timedelta64[us]")


def _scores(predicted: np.ndarray, windows: Windows, ends: np.ndarray, mask: np.ndarray, faults: Faults) -> Scores:
    return score_detections(
        predicted, sensor=windows.sensor_pk[mask], start=windows.slot_start[mask], end=ends[mask], faults=faults
    )


def _champion_comparison(mlflow_client, name, windows, ends, own, faults, probabilities) -> Comparison | None:
    """The champion and the challenger scored on the same windows: the type's windows newer than the champion's
    training data.

    The champion cannot be scored fairly on windows it was trained on, nor the challenger's final model (it
    was trained on them all), so both are scored on the windows after the champion's training data: the
    champion's own predictions there, and the challenger's out-of-fold ones (from models trained on the other
    time blocks, the newest block's mostly on the past). None without a champion; no scores (a ``note``) when
    there are no such windows with a labelled fault, or when the champion takes other features than scoring
    computes now.
    """
    try:
        version = mlflow_client.get_model_version_by_alias(name, registry.CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    comparison = Comparison(champion_version=str(version.version))
    params = mlflow_client.get_run(version.run_id).data.params
    if params.get("features", ",".join(FEATURES)) != ",".join(FEATURES):
        comparison.note = "it takes other features than scoring computes now"
        return comparison
    trained_until = params.get("trained_until")
    if not trained_until:
        comparison.note = "its run does not record the end of its training data"
        return comparison
    until = np.datetime64(trained_until.replace("+00:00", ""), "us")
    comparison.after = f"{until.astype('datetime64[m]').astype(object):%Y-%m-%d %H:%M} UTC"
    unseen = own & (windows.start > until)
    comparison.windows = int(unseen.sum())
    # Faults are counted where the windows overlap them: those of the type after ``until``.
    challenger = _scores(probabilities[unseen] >= DECISION_THRESHOLD, windows, ends, unseen, faults)
    if not challenger.faults:
        comparison.note = (
            f"no labelled fault in the {comparison.windows:,} windows after {comparison.after}"
            if comparison.windows
            else f"no windows after its training data (to {comparison.after})"
        )
        return comparison
    # Loaded (downloaded from the artifact store) only when there is something to score it on.
    champion = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
    predicted = champion.predict_proba(_frame(windows.X[unseen]))[:, 1] >= DECISION_THRESHOLD
    comparison.champion = _scores(predicted, windows, ends, unseen, faults)
    comparison.challenger = challenger
    return comparison


def _promotion(comparison: Comparison | None, *, promote: bool) -> tuple[bool, str]:
    """(make it champion?, why): the reason is tagged on the version (registry.PROMOTION_TAG), shown in the admin."""
    if comparison is None:
        return True, "promoted: first model (no champion)"
    champion = f"champion v{comparison.champion_version}"
    if comparison.challenger is not None and comparison.champion is not None:
        measured = (
            f"F1 {comparison.challenger.f1:.3f} vs {champion} {comparison.champion.f1:.3f} on "
            f"{comparison.windows:,} windows after {comparison.after} ({comparison.challenger.faults} faults)"
        )
        if promote:
            return True, f"promoted: --promote ({measured})"
        if comparison.challenger.f1 > comparison.champion.f1:
            return True, f"promoted: {measured}"
        return False, f"kept {champion}: {measured}, not better"
    if promote:
        return True, f"promoted: --promote (not compared with {champion}: {comparison.note})"
    if comparison.note.startswith("it takes other features"):
        # Scoring could not use that champion any more: the new version replaces it.
        return True, f"promoted: {champion} not compared, {comparison.note}"
    return False, f"kept {champion}: not compared, {comparison.note}"

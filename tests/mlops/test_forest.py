"""The supervised detectors as plain arrays (mlops.forest): the forest's numbers, loaded without skops."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from sklearn.ensemble import RandomForestClassifier

from mlops import forest, registry, scoring
from mlops.features import FEATURES
from mlops.forest import probabilities


def _fitted(classes: int, seed: int = 7) -> tuple[RandomForestClassifier, np.random.Generator]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(600, len(FEATURES))), columns=list(FEATURES))
    X.iloc[::17, 3] = np.nan  # trained with missing values: the trees learn where they go
    y = rng.integers(0, classes, size=len(X))
    model = RandomForestClassifier(n_estimators=30, class_weight="balanced_subsample", random_state=1, n_jobs=1)
    return model.fit(X, y), rng


@pytest.mark.parametrize("classes", [2, 3])
def test_the_arrays_predict_the_forests_probabilities_bit_for_bit(classes):
    model, rng = _fitted(classes)
    arrays = forest.Forest(forest.forest_bytes(model))
    # More rows than one block (forest.ROWS), values far from the training range, missing values in two features
    # (one never missing in training: its rows go where each node sends most samples).
    new = pd.DataFrame(rng.normal(size=(2 * forest.ROWS + 77, len(FEATURES))) * 3, columns=list(FEATURES))
    new.iloc[::13, 3] = np.nan
    new.iloc[::29, 5] = np.nan
    expected = model.predict_proba(new)
    assert np.array_equal(arrays.predict_proba(new), expected)
    assert np.array_equal(probabilities(arrays, new), expected)
    assert list(arrays.classes_) == list(model.classes_)
    with pytest.raises(ValueError, match="feature names"):
        arrays.predict_proba(new[list(reversed(FEATURES))])
    with pytest.raises(ValueError, match="infinity"):
        arrays.predict_proba(new.replace(np.nan, np.inf))


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_a_forest_file_is_numbers_only_and_must_hold_together():
    model, _rng = _fitted(2)
    with np.load(io.BytesIO(forest.forest_bytes(model))) as loaded:
        arrays = dict(loaded)
    # An object array (what a pickle would hide in) is refused, not unpickled.
    with pytest.raises(ValueError, match="allow_pickle"):
        forest.Forest(_npz(**{**arrays, "classes": np.array([0, {"x": 1}], dtype=object)}))
    # A child pointing back up (a walk that would never end), or out of the arrays, is refused.
    inner = int(np.flatnonzero(arrays["left"] >= 0)[1])
    for bad in (arrays["roots"][0], len(arrays["left"]) + 5):
        left = arrays["left"].copy()
        left[inner] = bad
        with pytest.raises(ValueError, match="inconsistent"):
            forest.Forest(_npz(**{**arrays, "left": left}))
    feature = arrays["feature"].copy()
    feature[inner] = len(FEATURES)
    with pytest.raises(ValueError, match="inconsistent"):
        forest.Forest(_npz(**{**arrays, "feature": feature}))


@pytest.fixture
def fleet():
    call_command("seed_data", "--sensors", "8", "--readings", "8000", "--anomaly-rate", "0.03", stdout=None)


@pytest.mark.django_db
def test_scoring_loads_the_arrays_logged_with_the_champion_and_skops_only_for_older_versions(mlflow_settings, fleet):
    import mlflow.sklearn

    call_command("train_models", "--types", "temperature")
    name = registry.model_name("temperature")
    version = str(registry.client().get_model_version_by_alias(name, registry.CHAMPION).version)
    champion = scoring.champion_model("temperature")
    assert champion.version == version and isinstance(champion.model, forest.Forest)
    # The scikit-learn flavour stays the registered model's (what MLflow serves, what training compares with).
    sklearn_model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(300, len(FEATURES))) * 2, columns=list(FEATURES))
    assert np.array_equal(champion.model.predict_proba(X), sklearn_model.predict_proba(X))

    # A version logged before the arrays were (the scikit-learn flavour alone) still loads, with skops.
    model, _rng = _fitted(2)
    with mlflow.start_run(experiment_id=registry.experiment_id()):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=["sklearn.tree._tree.Tree"],
        )
    older = mlflow.register_model(info.model_uri, f"{mlflow_settings.MLFLOW_MODEL_PREFIX}-older")
    try:
        loaded = scoring._load(older.name, str(older.version))
        assert type(loaded.model) is RandomForestClassifier
        assert np.array_equal(probabilities(loaded.model, X), model.predict_proba(X))
    finally:  # the session's MLflow server is shared: later tests list the registered models of the prefix
        registry.client().delete_registered_model(older.name)


@pytest.mark.django_db
def test_a_scoring_process_loads_its_models_without_skops_scikit_learn_or_unpickling(mlflow_settings, fleet):
    import mlflow.pyfunc
    from django.conf import settings as live

    from tests.conftest import run_manage, server_url

    call_command("train_models", "--types", "temperature")
    call_command("train_models", "--detector", "normal")
    name = registry.normal_model_name()
    version = registry.client().get_model_version_by_alias(name, registry.CHAMPION).version
    logged = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model().fleet
    assert scoring.normal_champion().model == logged  # the pyfunc model's own dict, read from its JSON
    code = (
        "import json, sys\n"
        "from mlops.scoring import champion_model, normal_champion\n"
        "champion, normal = champion_model('temperature'), normal_champion()\n"
        "loaded = {name.split('.')[0] for name in sys.modules} | set(sys.modules)\n"
        "print(json.dumps([type(champion.model).__name__, sorted(normal.model['assets']), "
        "sorted(loaded & {'skops', 'sklearn', 'mlops.normal_training'})]))\n"
    )
    # The S3 settings come from this process's environment (mlflow_settings), as run_manage passes it on.
    env = {
        "DATABASE_URL": server_url(live.DATABASES["default"]["NAME"]),
        "DJANGO_VAR_DIR": str(live.VAR_DIR),
        "MLFLOW_TRACKING_URI": mlflow_settings.MLFLOW_TRACKING_URI,
    }
    result = run_manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    # mlops.normal_training: the class of the pickled pyfunc model, imported to unpickle it.
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["Forest", sorted(logged["assets"]), []]

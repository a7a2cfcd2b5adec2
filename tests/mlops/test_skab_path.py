"""The SKAB benchmark's path (bench/skab.py) on two experiment files, through the product.

Import with ``import_readings``, the asset's normal model trained on the first 400 readings, the rest scored, and
the per-reading flags scored as the leaderboard does. The full run over 34 files is ``bench/skab.py``.
"""

import os

import pytest

from bench.skab import DATASET, evaluate
from mlops.models import Anomaly
from readings.models import FaultLabel

pytestmark = pytest.mark.django_db
FILES = ["valve1/0.csv", "other/9.csv"]


@pytest.fixture
def dataset():
    if not DATASET.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"The SKAB data is not at {DATASET}: set SKAB_DATASET to ../shared/datasets/skab.")
        pytest.skip(f"The SKAB data is not at {DATASET} (set SKAB_DATASET).")
    return [DATASET / name for name in FILES]


def test_two_skab_experiments_through_import_training_and_scoring(dataset, mlflow_settings):
    # As bench/skab.py, whose MLflow store is its own: the normal model alone. The session's MLflow server holds
    # other tests' supervised champions of the same sensor types (the seeded fleet's), which would score too.
    mlflow_settings.MLFLOW_MODEL_PREFIX = "skab-path"
    result = evaluate(dataset, window=10)
    assert result["files"] == 2 and result["test_readings"] == (1147 - 400) + (1144 - 400)
    # Better than the trivial detector that flags every reading, on the leaderboard's own measure.
    reference = result["reference_flag_everything"]
    assert reference["far"] == 100 and reference["mar"] == 0
    assert result["f1"] > reference["f1"] and result["far"] < 100
    assert result["nab_standard"] > reference["nab_standard"]
    # The anomaly column became fault labels (for evaluation, never for training), and what was flagged says why.
    assert FaultLabel.objects.filter(sensor__asset__code="SKAB-valve1-0", source="import").exists()
    flagged = Anomaly.objects.filter(sensor__asset__code="SKAB-valve1-0", detector="normal")
    assert flagged.exists()
    assert all(anomaly.explanation["contributions"] for anomaly in flagged)

"""Promotion compares like with like (both versions on the same newest windows) and records why on the version in
MLflow, shown on the model's registry page: on a real MLflow server."""

import io
import re
import uuid
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse

from mlops import registry
from mlops.evaluation import Scores
from mlops.training import Comparison, _promotion

pytestmark = pytest.mark.django_db

SEED = ["--sensors", "8", "--readings", "16000", "--anomaly-rate", "0.03"]


def scores(f1: float, faults: int = 6) -> Scores:
    return Scores(precision=f1, recall=f1, f1=f1, window_f1=f1, faults=faults, detected=faults, alarms=faults)


def compared(challenger: float, champion: float) -> Comparison:
    return Comparison(
        champion_version="3",
        after="2026-11-20 00:00 UTC",
        windows=1234,
        champion=scores(champion),
        challenger=scores(challenger),
    )


def test_the_reasons_for_promoting_or_keeping_the_champion():
    assert _promotion(None, promote=False) == (True, "promoted: first model (no champion)")
    assert _promotion(compared(0.91, 0.85), promote=False) == (
        True,
        "promoted: F1 0.910 vs champion v3 0.850 on 1,234 windows after 2026-11-20 00:00 UTC (6 faults)",
    )
    assert _promotion(compared(0.85, 0.85), promote=False) == (
        False,
        "kept champion v3: F1 0.850 vs champion v3 0.850 on 1,234 windows after 2026-11-20 00:00 UTC (6 faults), "
        "not better",
    )
    promoted, reason = _promotion(compared(0.5, 0.85), promote=True)
    assert promoted and reason.startswith("promoted: --promote (F1 0.500 vs champion v3 0.850 on 1,234 windows")
    nothing = Comparison(champion_version="3", after="2026-11-20 00:00 UTC", note="no windows after its training data")
    assert _promotion(nothing, promote=False) == (
        False,
        "kept champion v3: not compared, no windows after its training data",
    )
    assert _promotion(nothing, promote=True)[0]
    other = Comparison(champion_version="3", note="it takes other features than scoring computes now")
    assert _promotion(other, promote=False) == (
        True,
        "promoted: champion v3 not compared, it takes other features than scoring computes now",
    )


def train(*args) -> str:
    out = io.StringIO()
    call_command("train_models", "--detector", "supervised", "--types", "temperature", *args, stdout=out)
    return out.getvalue()


def version_of(name: str, alias: str):
    return registry.client().get_model_version_by_alias(name, alias)


def test_promotion_scores_both_versions_on_the_newest_windows_and_tags_why(mlflow_settings, client):
    mlflow_settings.MLFLOW_MODEL_PREFIX = f"promotion-{uuid.uuid4().hex[:8]}"
    name = registry.model_name("temperature")
    mlflow_client = registry.client()
    call_command("seed_data", *SEED, "--end", "2026-03-01T00:00:00Z", stdout=None)

    printed = train()
    first = version_of(name, registry.CHAMPION)
    assert first.tags[registry.PROMOTION_TAG] == "promoted: first model (no champion)"
    assert f"v{first.version}: " in printed and "promoted: first model (no champion) -> champion" in printed

    # The same data again: nothing newer than the champion's training data to compare on, so it stays.
    printed = train()
    second = version_of(name, registry.CHALLENGER)
    reason = second.tags[registry.PROMOTION_TAG]
    assert reason.startswith(f"kept champion v{first.version}: not compared, no windows after its training data")
    assert f"{reason} -> challenger" in printed
    assert version_of(name, registry.CHAMPION).version == first.version

    # A day of newer readings (with faults): both versions are scored on its windows, and only on them.
    call_command("seed_data", *SEED, "--end", "2026-03-02T00:00:00Z", stdout=None)
    printed = train()
    third = version_of(name, registry.CHALLENGER)
    reason = third.tags[registry.PROMOTION_TAG]
    metrics = mlflow_client.get_run(third.run_id).data.metrics
    assert 0 < metrics["newest_windows"] < metrics["windows"] and metrics["newest_faults"] > 0
    windows, faults = int(metrics["newest_windows"]), int(metrics["newest_faults"])
    # The champion's training data ends with its last reading (the seed's end is exclusive).
    after = datetime.fromisoformat(mlflow_client.get_run(first.run_id).data.params["trained_until"])
    assert after == datetime(2026, 2, 28, 23, 59, tzinfo=UTC)
    measured = (
        f"F1 {metrics['newest_f1']:.3f} vs champion v{first.version} {metrics['newest_champion_f1']:.3f} on "
        f"{windows:,} windows after {after:%Y-%m-%d %H:%M} UTC ({faults} faults)"
    )
    better = metrics["newest_f1"] > metrics["newest_champion_f1"]
    assert reason == (f"promoted: {measured}" if better else f"kept champion v{first.version}: {measured}, not better")
    assert f"{reason} -> {'champion' if better else 'challenger'}" in printed
    assert version_of(name, registry.CHAMPION).version == (third.version if better else first.version)
    # The line's first F1 is the whole range's, and is not the one compared on the newest windows.
    assert re.search(rf"F1 {metrics['f1']:.3f} \(", printed)

    printed = train("--promote")
    forced = version_of(name, registry.CHAMPION)
    # With the comparison when there is one to make: the first version is still champion unless the third beat it
    # (the same data and seed: the same figures as the third's).
    expected = "promoted: --promote (not compared" if better else f"promoted: --promote ({measured})"
    assert forced.tags[registry.PROMOTION_TAG].startswith(expected)
    assert forced.version not in (first.version, second.version, third.version)

    # The registry page in the admin shows each version's reason.
    staff = User.objects.create_user("models", password="pw", is_staff=True, is_superuser=True)
    client.force_login(staff)
    response = client.get(reverse("admin:mlops_registry_model", args=[name]))
    assert response.status_code == 200
    rows = {row.version: row for row in response.context["versions"]}
    for version in (first, second, third, forced):
        assert rows[str(version.version)].promotion == version.tags[registry.PROMOTION_TAG]
        assert registry.PROMOTION_TAG not in rows[str(version.version)].tags  # shown once, as its own line
    page = response.content.decode()
    assert "<dt>Promotion</dt>" in page and "promoted: first model (no champion)" in page
    assert f"kept champion v{first.version}: not compared" in page

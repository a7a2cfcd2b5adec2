"""The "Models and alerts" admin on a real MLflow server: registry pages, alias moves and archiving, permissions,
an unreachable MLflow, and the alert actions."""

import re
import uuid
from unittest import mock

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.urls import reverse
from mlflow.tracking import MlflowClient

from mlops import registry
from mlops.choices import AlertKind, AlertSeverity, AlertStatus
from mlops.models import Alert, AlertSubscription, Anomaly, ScoringRun
from mlops.services import alert_raise
from tests.factories import SensorFactory
from tests.services import S3_ENV

pytestmark = pytest.mark.django_db

CLOSED_PORT = "http://127.0.0.1:9"
TYPES = ("temperature", "vibration")


@pytest.fixture(scope="module")
def trained(mlflow_url, s3_endpoint, django_db_blocker):
    """Two registered models (one per type) with two versions each: v1 champion, v2 challenger.

    Trained once for the module under its own model prefix; the seeded fleet is rolled back afterwards (MLflow
    keeps the models: its server commits on its own connection).
    """
    prefix = f"admin-{uuid.uuid4().hex[:8]}"
    mlflow_env = {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    with (
        override_settings(
            MLFLOW_TRACKING_URI=mlflow_url, MLFLOW_REGISTRY_URI="", MLFLOW_UI_URL="", MLFLOW_MODEL_PREFIX=prefix
        ),
        pytest.MonkeyPatch.context() as monkeypatch,
        django_db_blocker.unblock(),
        transaction.atomic(),
    ):
        for key, value in mlflow_env.items():
            monkeypatch.setenv(key, value)
        call_command("seed_data", "--sensors", "8", "--readings", "4000", "--end", "2026-03-01T00:00:00Z", stdout=None)
        call_command("train_models", "--types", ",".join(TYPES), stdout=None)
        call_command("train_models", "--types", ",".join(TYPES), stdout=None)
        transaction.set_rollback(True)
    return {sensor_type: f"{prefix}-{sensor_type}" for sensor_type in TYPES}


def make_staff(username: str, perms: list[str]) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


# A registry change goes through once confirmed, with a reason.
CONFIRMED = {"confirmed": "on", "reason": "better recall on the holdout"}
OPERATOR_PERMS = ["mlops.view_anomaly", "mlops.change_anomaly", "mlops.view_alert", "mlops.change_alert"]


@pytest.fixture
def operator(client):
    user = make_staff("operator", OPERATOR_PERMS)
    client.force_login(user)
    return user


def registry_url() -> str:
    return reverse("admin:mlops_registry")


def model_url(name: str) -> str:
    return reverse("admin:mlops_registry_model", args=[name])


def alias_version(name: str, alias: str) -> str:
    return str(registry.client().get_model_version_by_alias(name, alias).version)


# --- registry pages -----------------------------------------------------------------------------------------


def test_the_list_shows_every_model_with_its_aliases_from_one_search(trained, mlflow_settings, client, operator):
    search = mock.patch.object(
        MlflowClient, "search_registered_models", autospec=True, side_effect=MlflowClient.search_registered_models
    )
    per_model = mock.patch.object(MlflowClient, "get_registered_model", autospec=True)
    with search as searched, per_model as fetched:
        response = client.get(registry_url())
    assert response.status_code == 200
    assert searched.call_count == 1 and fetched.call_count == 0
    rows = {row.name: row for row in response.context["models"]}
    for name in trained.values():
        assert rows[name].aliases[registry.CHAMPION] == alias_version(name, registry.CHAMPION)
        assert rows[name].aliases[registry.CHALLENGER] == alias_version(name, registry.CHALLENGER)
        assert model_url(name) in response.content.decode()
    assert response.context["error"] is None
    assert "cannot be reached" not in response.content.decode()


def test_the_detail_shows_each_version_with_its_runs_metrics_and_params(trained, mlflow_settings, client, operator):
    name = trained["temperature"]
    response = client.get(model_url(name))
    assert response.status_code == 200
    versions = {row.version: row for row in response.context["versions"]}
    champion, challenger = alias_version(name, registry.CHAMPION), alias_version(name, registry.CHALLENGER)
    assert champion != challenger and {champion, challenger} <= versions.keys()
    assert versions[champion].aliases == [registry.CHAMPION]
    assert versions[challenger].aliases == [registry.CHALLENGER]
    for row in versions.values():
        metrics = dict(row.metrics)
        assert {"precision", "recall", "f1"} <= metrics.keys()
        assert [key for key, _ in row.metrics[:3]] == ["precision", "recall", "f1"]
        assert dict(row.params)["sensor_type"] == "temperature"
        assert row.tags["sensor_type"] == "temperature" and row.created_at is not None
        # MLFLOW_UI_URL is set by mlflow_settings: each version links to its run there.
        assert row.run_url and row.run_id in row.run_url
    page = response.content.decode()
    assert "n_estimators" in page and f'id="v{champion}"' in page
    assert 'name="action" value="champion"' in page  # the challenger can be made champion


def test_the_detail_fetches_runs_in_one_search_not_per_version(trained, mlflow_settings, client, operator):
    get_run = mock.patch.object(MlflowClient, "get_run", autospec=True, side_effect=MlflowClient.get_run)
    search_runs = mock.patch.object(MlflowClient, "search_runs", autospec=True, side_effect=MlflowClient.search_runs)
    with get_run as single, search_runs as batched:
        response = client.get(model_url(trained["vibration"]))
    assert response.status_code == 200 and len(response.context["versions"]) >= 2
    assert batched.call_count == 1 and single.call_count == 0


def test_moving_the_champion_changes_it_in_mlflow_and_logs_it(trained, mlflow_settings, client, operator):
    name = trained["temperature"]
    old, new = alias_version(name, registry.CHAMPION), alias_version(name, registry.CHALLENGER)
    assert old != new
    response = client.post(model_url(name), {"action": registry.CHAMPION, "version": new, **CONFIRMED})
    assert response.status_code == 302 and response.url == model_url(name)
    assert alias_version(name, registry.CHAMPION) == new
    entry = LogEntry.objects.get(user=operator)
    assert entry.change_message == f"Set alias champion of {name} to version {new}. Reason: {CONFIRMED['reason']}"
    page = client.get(response.url)
    assert f"The champion of {name} is now version {new}." in [str(m) for m in page.context["messages"]]
    assert page.context["versions"][0].version == new and registry.CHAMPION in page.context["versions"][0].aliases

    # And back: the challenger alias can be moved the same way.
    client.post(model_url(name), {"action": registry.CHAMPION, "version": old, **CONFIRMED})
    assert alias_version(name, registry.CHAMPION) == old


def test_archiving_a_version_archives_it_in_mlflow_and_drops_its_aliases(trained, mlflow_settings, client, operator):
    name = trained["vibration"]
    version = alias_version(name, registry.CHALLENGER)
    assert version != alias_version(name, registry.CHAMPION)
    response = client.post(model_url(name), {"action": "archive", "version": version, **CONFIRMED})
    assert response.status_code == 302
    archived = registry.client().get_model_version(name, version)
    assert archived.current_stage == "Archived" and archived.aliases == []
    assert archived.tags["smartmaint.archived_reason"].startswith(f"{CONFIRMED['reason']} (operator, ")
    message = f"Archived {name} version {version}. Reason: {CONFIRMED['reason']}"
    assert LogEntry.objects.filter(user=operator, change_message=message).exists()
    page = client.get(model_url(name))
    row = {row.version: row for row in page.context["versions"]}[version]
    assert row.archived and row.other_aliases == []


def test_a_registry_change_asks_for_confirmation_and_a_reason_first(trained, mlflow_settings, client, operator):
    name = trained["temperature"]
    champion = alias_version(name, registry.CHAMPION)
    page = client.post(model_url(name), {"action": "archive", "version": champion})
    assert page.status_code == 200 and page.templates[0].name == "admin/mlops/registry_confirm.html"
    html = page.content.decode()
    assert "scoring of its type stops" in html and 'name="reason"' in html and 'name="confirmed"' in html
    assert alias_version(name, registry.CHAMPION) == champion  # nothing changed yet
    # Confirmed without a reason: asked again, still nothing changed.
    page = client.post(model_url(name), {"action": "archive", "version": champion, "confirmed": "on", "reason": " "})
    assert page.status_code == 200 and "Give a reason" in page.content.decode()
    assert alias_version(name, registry.CHAMPION) == champion and not LogEntry.objects.exists()


def test_an_archived_version_cannot_be_made_champion_by_posting(trained, mlflow_settings, client, operator):
    name = trained["vibration"]
    champion = alias_version(name, registry.CHAMPION)
    versions = registry.client().search_model_versions(f"name = '{name}'")
    other = next(v for v in versions if str(v.version) != champion)
    if other.current_stage != "Archived":
        client.post(model_url(name), {"action": "archive", "version": other.version, **CONFIRMED})
    other = str(other.version)
    response = client.post(model_url(name), {"action": registry.CHAMPION, "version": other, **CONFIRMED}, follow=True)
    assert any("archived" in str(m) and str(m).startswith("Nothing changed") for m in response.context["messages"])
    assert alias_version(name, registry.CHAMPION) == champion


def test_every_registry_reader_sees_the_changes_with_their_reasons(trained, mlflow_settings, client, operator):
    name = trained["temperature"]
    champion, challenger = alias_version(name, registry.CHAMPION), alias_version(name, registry.CHALLENGER)
    client.post(model_url(name), {"action": registry.CHALLENGER, "version": champion, **CONFIRMED})
    tags = registry.client().get_model_version(name, champion).tags
    assert tags["smartmaint.challenger_reason"].startswith(CONFIRMED["reason"])
    client.force_login(make_staff("viewer", ["mlops.view_anomaly"]))
    for url in (registry_url(), model_url(name)):
        changes = re.search(r'id="ml-changes"(.*?)</section>', client.get(url).content.decode(), re.S).group(1)
        assert "operator" in changes and CONFIRMED["reason"] in changes
        assert f"Set alias challenger of {name} to version {champion}" in changes
    client.force_login(operator)
    client.post(model_url(name), {"action": registry.CHALLENGER, "version": challenger, **CONFIRMED})


def test_a_bad_form_changes_nothing_and_says_why(trained, mlflow_settings, client, operator):
    name = trained["temperature"]
    champion = alias_version(name, registry.CHAMPION)
    response = client.post(model_url(name), {"action": "production", "version": "1"}, follow=True)
    assert response.status_code == 200
    assert any("not one of the available choices" in str(m) for m in response.context["messages"])
    response = client.post(model_url(name), {"action": registry.CHAMPION, "version": "9999", **CONFIRMED}, follow=True)
    assert any(str(m).startswith("Nothing changed: MLflow at") for m in response.context["messages"])
    assert alias_version(name, registry.CHAMPION) == champion
    assert not LogEntry.objects.exists()


def test_an_unknown_model_is_404(trained, mlflow_settings, client, operator):
    assert client.get(model_url("no-such-model")).status_code == 404


def test_staff_with_view_permission_only_read(trained, mlflow_settings, client):
    client.force_login(make_staff("viewer", ["mlops.view_anomaly"]))
    name = trained["temperature"]
    champion, challenger = alias_version(name, registry.CHAMPION), alias_version(name, registry.CHALLENGER)
    page = client.get(model_url(name))
    assert page.status_code == 200 and not page.context["can_change"]
    assert 'name="action"' not in page.content.decode() and "Read-only" in page.content.decode()
    response = client.post(model_url(name), {"action": registry.CHAMPION, "version": challenger})
    assert response.status_code == 403
    assert alias_version(name, registry.CHAMPION) == champion


def test_staff_without_model_permissions_are_refused(trained, mlflow_settings, client):
    client.force_login(make_staff("fleet-only", ["sensors.view_sensor"]))
    assert client.get(registry_url()).status_code == 403
    assert client.get(model_url(trained["temperature"])).status_code == 403
    assert reverse("admin:mlops_registry") not in client.get(reverse("admin:index")).content.decode()


def test_non_staff_are_refused_and_anonymous_sent_to_login(trained, mlflow_settings, client):
    name = trained["temperature"]
    champion, challenger = alias_version(name, registry.CHAMPION), alias_version(name, registry.CHALLENGER)
    for url in (registry_url(), model_url(name)):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("admin:login"))
    member = User.objects.create_user("member", password="pw")
    for perm in OPERATOR_PERMS:  # permissions without staff status are not enough
        member.user_permissions.add(Permission.objects.get(codename=perm.split(".")[1]))
    client.force_login(member)
    response = client.post(model_url(name), {"action": registry.CHAMPION, "version": challenger})
    assert response.status_code == 302 and response.url.startswith(reverse("admin:login"))
    assert alias_version(name, registry.CHAMPION) == champion


def test_the_registry_is_linked_from_the_admin_index_and_the_app_page(mlflow_settings, client, operator):
    for url in (reverse("admin:index"), reverse("admin:app_list", args=["mlops"])):
        response = client.get(url)
        assert response.status_code == 200
        assert f'href="{registry_url()}"' in response.content.decode()


# --- MLflow unreachable -------------------------------------------------------------------------------------


def test_without_mlflow_the_pages_answer_200_with_a_banner_and_the_console_works(settings, client, operator):
    settings.MLFLOW_TRACKING_URI = CLOSED_PORT
    settings.MLFLOW_REGISTRY_URI = ""
    banner = f"MLflow at {CLOSED_PORT} cannot be reached: "
    for url in (registry_url(), model_url("smartmaint-anomaly-temperature")):
        response = client.get(url)
        assert response.status_code == 200
        assert banner in response.content.decode()
        assert response.context["error"].startswith(banner)

    response = client.post(
        model_url("smartmaint-anomaly-temperature"),
        {"action": registry.CHAMPION, "version": "1", **CONFIRMED},
        follow=True,
    )
    assert response.status_code == 200
    assert any(str(m).startswith("Nothing changed: MLflow at") for m in response.context["messages"])
    assert not LogEntry.objects.exists()

    alert_raise(sensor=SensorFactory(), kind=AlertKind.STALE, severity=AlertSeverity.WARNING, title="probe is stale")
    for url in (reverse("admin:mlops_alert_changelist"), reverse("admin:mlops_anomaly_changelist")):
        assert client.get(url).status_code == 200
    assert "probe is stale" in client.get(reverse("admin:mlops_alert_changelist")).content.decode()


def test_the_banner_and_the_log_never_show_credentials(settings, client, operator, caplog):
    settings.MLFLOW_TRACKING_URI = "http://ops:s3cret@127.0.0.1:9"
    settings.MLFLOW_REGISTRY_URI = ""
    response = client.get(registry_url())
    assert response.status_code == 200
    assert "MLflow at http://127.0.0.1:9 cannot be reached" in response.content.decode()
    assert "s3cret" not in response.content.decode()
    assert "cannot be reached" in caplog.text and "s3cret" not in caplog.text
    response = client.post(model_url("any"), {"action": registry.CHAMPION, "version": "1", **CONFIRMED}, follow=True)
    assert all("s3cret" not in str(m) for m in response.context["messages"])


# --- alerts and the other tables ----------------------------------------------------------------------------


def _act(client, action: str, alerts: list[Alert]):
    return client.post(
        reverse("admin:mlops_alert_changelist"),
        {"action": action, "_selected_action": [alert.pk for alert in alerts]},
        follow=True,
    )


def test_acknowledge_and_resolve_actions_change_status_and_count(client, operator):
    first, _ = alert_raise(sensor=SensorFactory(), kind=AlertKind.STALE, severity=AlertSeverity.WARNING, title="a")
    second, _ = alert_raise(sensor=SensorFactory(), kind=AlertKind.OFFLINE, severity=AlertSeverity.CRITICAL, title="b")

    response = _act(client, "acknowledge", [first])
    assert "1 alert(s) acknowledged." in [str(m) for m in response.context["messages"]]
    first.refresh_from_db()
    assert first.status == AlertStatus.ACKNOWLEDGED and first.acknowledged_by == operator

    response = _act(client, "acknowledge", [first, second])
    assert "1 alert(s) acknowledged. 1 skipped (not open)." in [str(m) for m in response.context["messages"]]

    response = _act(client, "resolve", [first, second])
    assert "2 alert(s) resolved." in [str(m) for m in response.context["messages"]]
    for alert in (first, second):
        alert.refresh_from_db()
        assert alert.status == AlertStatus.RESOLVED and alert.resolved_by == operator and alert.resolved_at
    assert LogEntry.objects.filter(object_id=str(first.pk)).count() == 2


def test_alert_actions_need_the_change_permission(client):
    client.force_login(make_staff("alert-viewer", ["mlops.view_alert"]))
    alert, _ = alert_raise(sensor=SensorFactory(), kind=AlertKind.STALE, severity=AlertSeverity.WARNING, title="a")
    response = client.get(reverse("admin:mlops_alert_changelist"))
    assert response.status_code == 200 and "Acknowledge selected alerts" not in response.content.decode()
    _act(client, "acknowledge", [alert])
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN


def test_an_alert_page_is_read_only_and_alerts_are_never_added_or_deleted(client, operator):
    alert, _ = alert_raise(sensor=SensorFactory(), kind=AlertKind.STALE, severity=AlertSeverity.WARNING, title="a")
    page = client.get(reverse("admin:mlops_alert_change", args=[alert.pk]))
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert client.get(reverse("admin:mlops_alert_add")).status_code == 403
    assert client.get(reverse("admin:mlops_alert_delete", args=[alert.pk])).status_code == 403


def test_anomalies_are_listed_filtered_and_read_only(client):
    client.force_login(User.objects.create_superuser("root", password="pw"))
    sensor = SensorFactory(sensor_id="probe-anomalous")
    anomaly = Anomaly.objects.create(
        sensor=sensor,
        start="2026-02-01T10:00:00Z",
        end="2026-02-01T10:10:00Z",
        score=0.91,
        model_name="smartmaint-anomaly-temperature",
        model_version="3",
    )
    url = reverse("admin:mlops_anomaly_changelist")
    response = client.get(url, {"q": "anomalous", "sensor__sensor_type__exact": "temperature"})
    page = response.content.decode()
    assert response.status_code == 200 and "probe-anomalous" in page and "0.91" in page
    assert f'href="{model_url("smartmaint-anomaly-temperature")}#v3"' in page
    assert client.get(url, {"q": "nothing-like-it"}).context["cl"].result_count == 0
    assert client.get(reverse("admin:mlops_anomaly_add")).status_code == 403
    assert not client.get(reverse("admin:mlops_anomaly_change", args=[anomaly.pk])).context["has_change_permission"]


def test_subscriptions_and_scoring_runs_pages_render(client):
    root = User.objects.create_superuser("root", email="root@example.com", password="pw")
    client.force_login(root)
    AlertSubscription.objects.create(user=root, min_severity=AlertSeverity.CRITICAL)
    run = ScoringRun.objects.create(
        sensor_type="vibration",
        model_name="smartmaint-anomaly-vibration",
        model_version="2",
        start="2026-02-01T00:00:00Z",
        end="2026-02-02T00:00:00Z",
        windows=144,
        anomalies=3,
    )
    subscriptions = client.get(reverse("admin:mlops_alertsubscription_changelist")).content.decode()
    assert "root@example.com" in subscriptions and "Critical" in subscriptions
    assert client.get(reverse("admin:mlops_alertsubscription_add")).status_code == 200
    runs = client.get(reverse("admin:mlops_scoringrun_changelist")).content.decode()
    assert f'href="{model_url("smartmaint-anomaly-vibration")}#v2"' in runs
    assert client.get(reverse("admin:mlops_scoringrun_add")).status_code == 403
    assert not client.get(reverse("admin:mlops_scoringrun_change", args=[run.pk])).context["has_change_permission"]

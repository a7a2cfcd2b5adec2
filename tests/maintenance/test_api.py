"""/api/v1/work-orders: what each group may do, only within their sites, under the workflow's rules."""

import pytest
from django.contrib.auth.models import User
from rest_framework_simplejwt.tokens import RefreshToken

from maintenance.choices import WorkOrderStatus
from maintenance.models import WorkOrder
from maintenance.services import work_order_assign, work_order_create
from mlops.choices import AlertStatus
from readings.choices import FaultKind
from readings.models import FaultLabel
from tests.maintenance.conftest import client_for, open_alert

pytestmark = pytest.mark.django_db
URL = "/api/v1/work-orders"


@pytest.fixture
def north_order(north_sensor, manager):
    return work_order_create(asset=north_sensor.asset, sensor=north_sensor, title="North pump", user=manager)


@pytest.fixture
def south_order(south_sensor, manager):
    return work_order_create(asset=south_sensor.asset, sensor=south_sensor, title="South pump", user=manager)


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_people_see_only_their_sites(north_order, south_order, manager, technician, south_technician, viewer):
    assert ids(client_for(manager).get(URL)) == {north_order.pk}
    assert ids(client_for(technician).get(URL)) == {north_order.pk}
    assert ids(client_for(viewer).get(URL)) == {north_order.pk}
    assert ids(client_for(south_technician).get(URL)) == {south_order.pk}
    assert client_for(technician).get(f"{URL}/{south_order.pk}").status_code == 404
    superuser = User.objects.create_superuser("root", password="pw-root-123")
    assert ids(client_for(superuser).get(URL)) == {north_order.pk, south_order.pk}


def test_people_outside_the_groups_and_api_keys_get_nothing(north_order):
    from rest_framework.test import APIClient

    from sensors.models import APIKey

    nobody = User.objects.create_user("nobody", password="pw-nobody-123", is_staff=True)
    assert client_for(nobody).get(URL).status_code == 403
    _, raw = APIKey.objects.create_key(name="key", scope="read_ingest")
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert keyed.get(URL).status_code == 403
    assert APIClient().get(URL).status_code == 401


def test_jwt_works_for_people(north_order, technician):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(technician).access_token}")
    assert ids(client.get(URL)) == {north_order.pk}


def test_manager_raises_from_an_alert_and_assigns(
    north_sensor, manager, technician, mailoutbox, django_capture_on_commit_callbacks
):
    alert = open_alert(north_sensor)
    client = client_for(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"alert": alert.pk, "assignee": technician.pk}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["alert"] == alert.pk and body["status"] == WorkOrderStatus.ASSIGNED and body["priority"] == 1
    assert client.post(URL, {"alert": alert.pk}, format="json").status_code == 200  # the one it has
    assert [message.to for message in mailoutbox] == [[technician.email]]


def test_manual_creation_needs_asset_and_title_in_your_sites(north_sensor, south_sensor, manager, technician):
    client = client_for(manager)
    assert client.post(URL, {"title": "x"}, format="json").status_code == 400
    response = client.post(URL, {"asset": south_sensor.asset.pk, "title": "x"}, format="json")
    assert response.status_code == 400
    response = client.post(
        URL, {"asset": north_sensor.asset.pk, "sensor_id": north_sensor.sensor_id, "title": "Check"}, format="json"
    )
    assert response.status_code == 201 and response.json()["origin"] == "manual"
    assert (
        client_for(technician).post(URL, {"asset": north_sensor.asset.pk, "title": "x"}, format="json").status_code
        == 403
    )


def test_technician_works_on_own_work_orders_only(north_order, manager, technician, other_technician, viewer):
    work_order_assign(work_order=north_order, assignee=technician, user=manager)
    detail = f"{URL}/{north_order.pk}"
    for outsider in (other_technician, viewer):
        client = client_for(outsider)
        assert client.patch(detail, {"status": "in_progress"}, format="json").status_code == 403
        assert client.post(f"{detail}/comments", {"text": "hi"}, format="json").status_code == 403
        assert client.post(f"{detail}/finding", {"outcome": "false_alarm"}, format="json").status_code == 403
    mine = client_for(technician)
    # A technician neither reassigns nor edits.
    assert mine.patch(detail, {"assignee": other_technician.pk}, format="json").status_code == 403
    assert mine.patch(detail, {"title": "mine now"}, format="json").status_code == 403
    assert mine.patch(detail, {"status": "done"}, format="json").status_code == 409  # not from assigned
    response = mine.patch(detail, {"status": "in_progress", "note": "On site"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "in_progress"
    assert mine.post(f"{detail}/comments", {"text": "Bearing noisy"}, format="json").status_code == 201
    assert [c["text"] for c in mine.get(f"{detail}/comments").json()] == ["Bearing noisy"]
    assert mine.get(f"{detail}/finding").status_code == 404
    response = mine.post(
        f"{detail}/finding",
        {"outcome": "confirmed_fault", "fault_kind": "drift", "fault_start": "2026-05-01T10:00:00Z", "cause": "Wear"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert mine.get(detail).json()["status"] == "done"
    assert mine.get(f"{detail}/finding").json()["fault_kind"] == "drift"
    assert FaultLabel.objects.filter(kind=FaultKind.DRIFT, source="staff").count() == 1
    kinds = [event["kind"] for event in mine.get(f"{detail}/timeline").json()]
    assert kinds == ["created", "assignment", "status", "status", "comment", "finding", "status"]
    assert mine.post(f"{detail}/finding", {"outcome": "false_alarm"}, format="json").status_code == 409


def test_finding_body_is_checked(north_order, manager, technician):
    work_order_assign(work_order=north_order, assignee=technician, user=manager)
    finding = f"{URL}/{north_order.pk}/finding"
    client = client_for(technician)
    assert client.post(finding, {"outcome": "confirmed_fault"}, format="json").status_code == 400
    bad = {"outcome": "false_alarm", "fault_start": "0001-01-01T00:00:00+20:00"}
    assert client.post(finding, bad, format="json").status_code == 400
    assert (
        client.post(finding, {"outcome": "confirmed_fault", "fault_kind": "normal"}, format="json").status_code == 400
    )


def test_manager_closes_and_the_alert_closes_with_it(north_sensor, manager):
    alert = open_alert(north_sensor)
    client = client_for(manager)
    work_order = client.post(URL, {"alert": alert.pk}, format="json").json()
    response = client.patch(f"{URL}/{work_order['id']}", {"status": "cancelled"}, format="json")
    assert response.status_code == 200
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_list_filters(north_order, north_sensor, manager, technician):
    work_order_assign(work_order=north_order, assignee=technician, user=manager)
    other = work_order_create(asset=north_sensor.asset, title="Other", user=manager)
    WorkOrder.objects.filter(pk=other.pk).update(due_at="2020-01-01T00:00:00Z")
    client = client_for(technician)
    assert ids(client.get(URL, {"mine": "true"})) == {north_order.pk}
    assert ids(client.get(URL, {"overdue": "true"})) == {other.pk}
    assert ids(client.get(URL, {"status": "assigned"})) == {north_order.pk}
    assert ids(client.get(URL, {"asset_code": north_sensor.asset.code})) == {north_order.pk, other.pk}
    assert ids(client.get(URL, {"site": "South Plant"})) == set()
    assert client.get(URL, {"ordering": "nope"}).status_code == 400

"""The console: "Raise work order" on alerts and anomalies, the work order list and page, for the groups."""

from datetime import timedelta

import pytest
from django.utils import timezone

from maintenance.models import WorkOrder
from maintenance.services import work_order_create
from tests.maintenance.conftest import make_anomaly, open_alert

pytestmark = pytest.mark.django_db


def test_raise_work_order_button_on_an_alert(client, north_sensor, manager):
    alert = open_alert(north_sensor)
    client.force_login(manager)
    page = client.get(f"/admin/mlops/alert/{alert.pk}/change/")
    assert page.status_code == 200 and b"Raise work order" in page.content
    response = client.post(f"/admin/mlops/alert/{alert.pk}/raise-work-order/")
    work_order = WorkOrder.objects.get(alert=alert)
    assert response.status_code == 302 and response["Location"].endswith(
        f"/maintenance/workorder/{work_order.pk}/change/"
    )
    page = client.get(response["Location"])
    assert page.status_code == 200 and alert.title.encode() in page.content


def test_raise_work_order_action_on_anomalies(client, north_sensor, manager):
    now = timezone.now()
    anomaly = make_anomaly(north_sensor, start=now - timedelta(hours=1), end=now)
    client.force_login(manager)
    response = client.post("/admin/mlops/anomaly/", {"action": "raise_work_order", "_selected_action": [anomaly.pk]})
    assert response.status_code == 302
    assert WorkOrder.objects.get(anomaly=anomaly).origin == "anomaly"
    assert b"Raise work order" in client.get(f"/admin/mlops/anomaly/{anomaly.pk}/change/").content


def test_technicians_and_viewers_cannot_raise(client, north_sensor, technician, viewer):
    alert = open_alert(north_sensor)
    for person in (technician, viewer):
        client.force_login(person)
        assert b"Raise work order" not in client.get(f"/admin/mlops/alert/{alert.pk}/change/").content
        assert client.post(f"/admin/mlops/alert/{alert.pk}/raise-work-order/").status_code == 403
    assert not WorkOrder.objects.exists()


def test_work_order_list_with_its_filters_shows_only_the_sites_given(
    client, north_sensor, south_sensor, manager, technician
):
    north = work_order_create(asset=north_sensor.asset, title="North job", user=manager, assignee=technician)
    work_order_create(asset=south_sensor.asset, title="South job", user=manager)
    client.force_login(technician)
    for query in (
        "",
        "?mine=1",
        "?overdue=1",
        "?overdue=active",
        "?site=North+Plant",
        f"?asset__id__exact={north.asset_id}",
    ):
        page = client.get(f"/admin/maintenance/workorder/{query}")
        assert page.status_code == 200, query
        assert b"South job" not in page.content
    assert b"North job" in client.get("/admin/maintenance/workorder/?mine=1").content
    assert b"North job" not in client.get("/admin/maintenance/workorder/?overdue=1").content

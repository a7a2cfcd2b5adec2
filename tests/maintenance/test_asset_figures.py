"""The asset page's "Maintenance" section: the figures of asset_maintenance_figures on a hand-made set (two
confirmed faults, one false alarm, a cancelled work order and an old fault left out), the section on the page, and
the page's queries not growing with the work orders."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from maintenance.models import Finding, WorkOrder
from maintenance.selectors import asset_maintenance_figures
from tests.factories import AssetFactory
from tests.maintenance.conftest import open_alert

pytestmark = pytest.mark.django_db

NOW = timezone.now()
DAY = timedelta(days=1)


def make_work_order(asset, *, status="done", origin="alert", created, started=None, done=None, **finding):
    work_order = WorkOrder.objects.create(asset=asset, title=f"Job {origin}", status=status, origin=origin, due_at=NOW)
    WorkOrder.objects.filter(pk=work_order.pk).update(created_at=created, started_at=started, done_at=done)
    if finding:
        Finding.objects.create(work_order=work_order, **finding)
    return work_order


def confirmed(start, end=None):
    return {"outcome": "confirmed_fault", "fault_kind": "step", "fault_start": start, "fault_end": end}


@pytest.fixture
def history(north_sensor):
    asset = north_sensor.asset
    # 24 h to repair (in progress to done), 12 h down (the fault's start to end).
    make_work_order(
        asset,
        created=NOW - 20 * DAY,
        started=NOW - 19 * DAY,
        done=NOW - 18 * DAY,
        **confirmed(NOW - 20 * DAY, NOW - 20 * DAY + timedelta(hours=12)),
    )
    # Never in progress: 48 h from created to done, and down as long (no fault end recorded).
    make_work_order(asset, origin="anomaly", created=NOW - 10 * DAY, done=NOW - 8 * DAY, **confirmed(NOW - 11 * DAY))
    make_work_order(asset, created=NOW - 5 * DAY, done=NOW - 4 * DAY, outcome="false_alarm")
    # Left out: a cancelled work order, a fault before the period, another asset's fault, a manual false alarm
    # (counts nowhere but in the manual work orders).
    make_work_order(asset, status="cancelled", created=NOW - 3 * DAY, **confirmed(NOW - 3 * DAY))
    make_work_order(asset, created=NOW - 200 * DAY, done=NOW - 199 * DAY, **confirmed(NOW - 200 * DAY))
    make_work_order(
        AssetFactory(site=asset.site), created=NOW - 3 * DAY, done=NOW - 2 * DAY, **confirmed(NOW - 3 * DAY)
    )
    make_work_order(asset, origin="manual", created=NOW - 2 * DAY, done=NOW - DAY, outcome="false_alarm")
    make_work_order(asset, status="in_progress", created=NOW - DAY, started=NOW - DAY)
    return asset


def test_figures_on_a_hand_made_set(history, django_assert_num_queries):
    with django_assert_num_queries(1):
        figures = asset_maintenance_figures(history, NOW - 90 * DAY, NOW)
    assert figures["failures"] == 2
    assert figures["mtbf"] == 45 * DAY
    assert figures["mttr"] == timedelta(hours=36)
    assert figures["downtime"] == timedelta(hours=60) and figures["downtime_hours"] == 60
    assert (figures["false_alarms"], figures["model_findings"]) == (1, 3)
    assert figures["false_alarm_rate"] == pytest.approx(1 / 3)
    year = asset_maintenance_figures(history, NOW - 365 * DAY, NOW)
    assert year["failures"] == 3 and year["mtbf"] == 365 * DAY / 3


def test_figures_of_a_quiet_asset(north_sensor):
    figures = asset_maintenance_figures(north_sensor.asset, NOW - 30 * DAY, NOW)
    assert figures["failures"] == 0 and figures["mtbf"] is None and figures["mttr"] is None
    assert figures["downtime_hours"] == 0 and figures["false_alarm_rate"] is None


def test_asset_page_shows_the_maintenance_section(client, manager, history, north_sensor):
    alert = open_alert(north_sensor)
    client.force_login(manager)
    page = client.get(f"/admin/sensors/asset/{history.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="sm-asset-maintenance"' in html
    assert '<td id="sm-figure-failures">2</td>' in html
    assert '<td id="sm-figure-mtbf">1,080.0 h</td>' in html
    assert '<td id="sm-figure-mttr">36.0 h</td>' in html
    assert '<td id="sm-figure-downtime">60.0 h</td>' in html
    assert "33% (1 of 3)" in html
    for work_order in WorkOrder.objects.filter(asset=history):
        assert f"/admin/maintenance/workorder/{work_order.pk}/change/" in html
    assert f"/admin/mlops/alert/{alert.pk}/change/" in html
    year = client.get(f"/admin/sensors/asset/{history.pk}/change/?period=365").content.decode()
    assert '<td id="sm-figure-failures">3</td>' in year


def test_no_section_for_people_who_may_not_see_work_orders(admin_client, client, north_sensor, django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_asset"))
    client.force_login(staff)
    page = client.get(f"/admin/sensors/asset/{north_sensor.asset.pk}/change/")
    assert page.status_code == 200 and b"sm-asset-maintenance" not in page.content
    assert b"sm-asset-maintenance" in admin_client.get(f"/admin/sensors/asset/{north_sensor.asset.pk}/change/").content


def test_page_queries_do_not_grow_with_the_work_orders(client, manager, north_sensor):
    asset = north_sensor.asset
    client.force_login(manager)
    url = f"/admin/sensors/asset/{asset.pk}/change/"
    make_work_order(asset, created=NOW - 2 * DAY, done=NOW - DAY, **confirmed(NOW - 2 * DAY))
    open_alert(north_sensor)
    client.get(url)  # warm the caches
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for day in range(2, 14):
        make_work_order(asset, created=NOW - day * DAY, done=NOW - DAY, **confirmed(NOW - day * DAY))
        make_work_order(asset, status="assigned", created=NOW - day * DAY)
    for kind in ("out_of_range", "stale", "offline"):  # one unresolved alert per sensor and kind
        open_alert(north_sensor, kind=kind)
    with CaptureQueriesContext(connection) as many:
        assert b"More than 10" in client.get(url).content
    assert len(many) == len(few)


def test_section_queries(rf, manager, history, django_assert_num_queries):
    from maintenance.admin_views import asset_maintenance_section

    request = rf.get("/", {"period": "30"})
    request.user = manager
    manager.has_perm("maintenance.view_workorder")  # the permissions, read once per request by the admin anyway
    # The person's sites, open and past work orders, open alerts, the figures: not growing with the rows.
    with django_assert_num_queries(5):
        section = asset_maintenance_section(request=request, asset=history)
    assert section["period"] == "30" and section["figures"]["failures"] == 2  # both faults within 30 days
    assert len(section["open_orders"]) == 1 and len(section["past_orders"]) == 6

"""The path of bench/maintenance.py on a small plant: its data built (COPY included), the pages it times answering
with their work orders for the bench's manager, and its raw-SQL references running (no timing asserted)."""

import pytest
from django.db import connection
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("groups")]


def test_the_maintenance_bench_builds_its_plant_and_its_pages_and_references_answer():
    from django.contrib.auth.models import User

    from bench.maintenance import BUSY_ALERTS, BUSY_SHARE, CHECKS, USERNAME, build, pages, reference
    from maintenance.models import Finding, WorkOrder
    from mlops.models import Alert

    ctx = build(assets=20, work_orders=400)
    assert WorkOrder.objects.count() == 400
    assert WorkOrder.objects.filter(asset_id=ctx["asset_id"]).count() >= 400 * BUSY_SHARE
    assert Finding.objects.count() == WorkOrder.objects.filter(status="done").count() > 0
    assert WorkOrder.objects.filter(assignee_id=ctx["user_id"]).exists()
    assert Alert.objects.filter(sensor__asset_id=ctx["asset_id"]).count() == BUSY_ALERTS

    client = Client()
    client.force_login(User.objects.get(username=USERNAME))
    for name, path in pages(ctx).items():
        response = client.get(path)
        assert response.status_code == 200, name
        assert CHECKS[name] in response.content, name
        reference(connection.connection, name, ctx)  # the same transaction: it sees the plant


def test_the_work_order_lists_fast_rows_are_djangos_rows(monkeypatch):
    """WorkOrderAdmin.result_cells writes what Django's list would: the same table, cell for cell (links with the
    filters kept, badges, overdue, empty assignees, the action checkbox for those who may delete)."""
    import re

    from django.contrib.auth.models import User

    from bench.maintenance import USERNAME, build
    from maintenance.admin import AssetFilter, WorkOrderAdmin

    build(assets=6, work_orders=150)
    root = User.objects.create_superuser("root", password="pw-root-123")
    for person in (User.objects.get(username=USERNAME), root):
        client = Client()
        client.force_login(person)
        for query in ("", "?overdue=active", "?mine=1&overdue=active&o=3"):

            def table(client=client, query=query):
                response = client.get(f"/admin/maintenance/workorder/{query}")
                html = response.content.decode()
                assert response.status_code == 200, (response.status_code, html[:2000])
                found = re.search(r'<table id="result_list">.*?</table>', html, re.S)
                assets = re.search(r'<details data-filter-title="asset".*?</details>', html, re.S).group(0)
                assets = re.sub(r">\s+<", "><", assets)
                return (found.group(0) if found else "", assets)  # root has no work orders of its own

            fast = table()
            monkeypatch.setattr(WorkOrderAdmin, "result_cells", lambda self, obj, changelist: None)
            monkeypatch.setattr(AssetFilter, "template", "admin/filter_select.html")
            django = table()
            monkeypatch.undo()
            assert fast == django, (person, query)
            assert fast[1].count("<option") == 7  # All, and the six assets
            assert fast[0].count("<tr") > 1 or (person == root and "mine" in query)


def test_the_fast_rows_and_asset_options_are_in_use(monkeypatch):
    from django.contrib.auth.models import User

    from bench.maintenance import USERNAME, build
    from maintenance.admin import WorkOrderAdmin

    ctx = build(assets=6, work_orders=60)
    written = []
    original = WorkOrderAdmin.result_cells

    def spy(self, obj, changelist):
        cells = original(self, obj, changelist)
        written.append(cells is not None)
        return cells

    monkeypatch.setattr(WorkOrderAdmin, "result_cells", spy)
    client = Client()
    client.force_login(User.objects.get(username=USERNAME))
    html = client.get(f"/admin/maintenance/workorder/?asset__id__exact={ctx['asset_id']}").content.decode()
    assert written and all(written)
    assert f'value="?asset__id__exact={ctx["asset_id"]}" selected>BUSY-0000 (Machine 0)</option>' in html

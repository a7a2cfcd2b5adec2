"""The work order list and page in the console (Django's test client, real PostgreSQL): the named filters and the
order, the page's header, origin chart, timeline and files, and each form (comment, photo, status, assignment,
finding) for each group: managers and the assigned technician act, others see no form and are refused."""

import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from maintenance.models import Attachment, WorkOrder, WorkOrderEvent
from maintenance.services import work_order_assign, work_order_create, work_order_raise_from_alert
from mlops.models import Alert
from readings.models import FaultLabel
from tests.admin.conftest import fill
from tests.maintenance.conftest import open_alert

pytestmark = pytest.mark.django_db
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
LIST = "/admin/maintenance/workorder/"
FORMS = ("comment", "attach", "status", "assign", "finding")


def page_url(work_order) -> str:
    return f"{LIST}{work_order.pk}/change/"


def form_url(work_order, name) -> str:
    return f"{LIST}{work_order.pk}/{name}/"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def shown_forms(content: bytes) -> set[str]:
    return {name for name in FORMS if f'id="sm-wo-{name}-form"'.encode() in content}


@pytest.fixture(autouse=True)
def local_media(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def raised(north_sensor, manager, technician):
    """A work order raised from a critical alert of a sensor with readings, assigned to the technician."""
    fill(north_sensor, 120)
    alert = open_alert(north_sensor)
    work_order, _ = work_order_raise_from_alert(alert=alert, user=manager)
    work_order_assign(work_order=work_order, assignee=technician, user=manager)
    return WorkOrder.objects.get(pk=work_order.pk)


def test_the_list_offers_named_filters_and_puts_the_most_urgent_first(north_sensor, manager, technician):
    asset = north_sensor.asset
    low = work_order_create(asset=asset, title="Low job", priority=4, user=manager)
    urgent = work_order_create(asset=asset, title="Urgent job", priority=1, user=manager, assignee=technician)
    high = work_order_create(asset=asset, title="High job", priority=2, user=manager)
    late_high = work_order_create(asset=asset, title="Late high job", priority=2, user=manager)
    WorkOrder.objects.filter(pk=low.pk).update(due_at=timezone.now() - timedelta(days=2))  # soonest, yet low
    WorkOrder.objects.filter(pk=late_high.pk).update(due_at=timezone.now() + timedelta(days=9))
    content = logged_in(manager).get(LIST).content.decode()
    order = [content.index(f"WO-{wo.pk}:") for wo in (urgent, high, late_high, low)]
    assert order == sorted(order), "priority rank (urgent, high, low), then due date"
    for tab in ("All", "Open", "Mine", "Overdue"):
        assert re.search(rf'<a href="[^"]*" id="sm-tab-\w+"[^>]*>{tab}</a>', content), tab
    assert 'class="sm-badge sm-badge--overdue">Overdue' in content

    technician_client = logged_in(technician)
    mine = technician_client.get(LIST, {"mine": "1", "overdue": "active"}).content.decode()
    assert "Urgent job" in mine and "High job" not in mine
    assert 'id="sm-tab-mine" class="selected"' in mine
    overdue = technician_client.get(LIST, {"overdue": "1"}).content.decode()
    assert "Low job" in overdue and "Urgent job" not in overdue
    # The tabs keep an asset chosen ("open by asset").
    by_asset = technician_client.get(LIST, {"asset__id__exact": asset.pk}).content.decode()
    assert f'href="?asset__id__exact={asset.pk}&amp;overdue=active" id="sm-tab-open"' in by_asset


def test_the_list_links_each_site_the_person_sees(north_sensor, south_sensor, manager):
    from sensors.models import UserSites

    UserSites.objects.filter(user=manager).update(sites=["North Plant", "South Plant"])
    work_order_create(asset=south_sensor.asset, title="South job", user=manager)
    work_order_create(asset=north_sensor.asset, title="North job", user=manager)
    client = logged_in(manager)
    content = client.get(LIST).content.decode()
    assert 'href="?site=South+Plant"' in content and "All sites" in content
    south = client.get(LIST, {"site": "South Plant"}).content.decode()
    assert "South job" in south and "North job" not in south


def test_the_page_shows_its_origin_charted_its_timeline_and_the_technicians_forms(raised, technician):
    content = logged_in(technician).get(page_url(raised)).content
    text = content.decode()
    assert 'id="sm-wo-status">Assigned<' in text and 'id="sm-wo-assignee">tech<' in text
    assert f'href="/admin/mlops/alert/{raised.alert_id}/change/"' in text
    assert f'href="/admin/sensors/sensor/{raised.sensor_id}/change/"' in text
    assert 'id="sm-chart"' in text and 'id="sm-chart-data" type="application/json"' in text
    assert "Assigned to tech." in text  # the timeline
    assert shown_forms(content) == {"comment", "attach", "status", "finding"}
    assert 'value="in_progress"' in text and 'value="open"' not in text
    # No inline script (the console's CSP): every script is a file, or JSON data.
    for tag in re.findall(r"<script[^>]*>", text):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_a_manager_assigns_from_the_page(raised, manager, other_technician, south_technician):
    client = logged_in(manager)
    content = client.get(page_url(raised)).content.decode()
    assert 'id="sm-wo-assign-form"' in content
    assert f'value="{other_technician.pk}"' in content
    assert f'value="{south_technician.pk}"' not in content, "only people of the work order's site"
    response = client.post(form_url(raised, "assign"), {"assignee": other_technician.pk})
    assert response.status_code == 302 and response["Location"].endswith("#sm-wo-header")
    raised.refresh_from_db()
    assert raised.assignee == other_technician
    assert WorkOrderEvent.objects.filter(work_order=raised, kind="assignment", assignee=other_technician).exists()
    response = client.post(form_url(raised, "assign"), {"assignee": south_technician.pk})
    assert response.status_code == 400 and b"Select a valid choice" in response.content


def test_comment_form(raised, technician):
    client = logged_in(technician)
    response = client.post(form_url(raised, "comment"), {"text": "  "})
    assert response.status_code == 400 and b"This field is required." in response.content
    response = client.post(form_url(raised, "comment"), {"text": "Bearing sounds rough."})
    assert response.status_code == 302
    event = WorkOrderEvent.objects.get(work_order=raised, kind="comment")
    assert event.user == technician and event.text == "Bearing sounds rough."
    assert b"Bearing sounds rough." in client.get(page_url(raised)).content


def test_photo_upload_and_download_through_the_permission_checked_view(raised, technician, viewer, south_technician):
    client = logged_in(technician)
    photo = SimpleUploadedFile("pump photo.png", PNG, content_type="image/png")
    response = client.post(form_url(raised, "attach"), {"file": photo})
    assert response.status_code == 302, response.content[:2000]
    attachment = Attachment.objects.get(work_order=raised)
    link = f"/maintenance/attachments/{attachment.pk}"
    assert f'href="{link}"'.encode() in client.get(page_url(raised)).content
    assert b"".join(client.get(link).streaming_content) == PNG
    assert b"".join(logged_in(viewer).get(link).streaming_content) == PNG
    assert logged_in(south_technician).get(link).status_code == 404
    text = SimpleUploadedFile("notes.txt", b"hello", content_type="text/plain")
    response = client.post(form_url(raised, "attach"), {"file": text})
    assert response.status_code == 400 and b"are not accepted" in response.content
    response = client.post(form_url(raised, "attach"), {})
    assert response.status_code == 400 and b"This field is required." in response.content


def test_status_buttons_follow_the_transitions(raised, technician):
    client = logged_in(technician)
    assert client.post(form_url(raised, "status"), {"status": "in_progress"}).status_code == 302
    raised.refresh_from_db()
    assert raised.status == "in_progress" and raised.started_at is not None
    content = client.get(page_url(raised)).content.decode()
    assert 'value="on_hold"' in content and 'value="in_progress"' not in content
    response = client.post(form_url(raised, "status"), {"status": "assigned"})
    assert response.status_code == 400 and b"cannot become assigned" in response.content
    response = client.post(form_url(raised, "status"), {"status": "nonsense"})
    assert response.status_code == 400 and b"Select a valid choice" in response.content
    raised.refresh_from_db()
    assert raised.status == "in_progress"


def test_finding_form_false_alarm_completes_the_work_order_and_closes_the_alert(raised, technician):
    client = logged_in(technician)
    response = client.post(form_url(raised, "finding"), {"outcome": "confirmed_fault", "cause": "?"})
    assert response.status_code == 400
    assert response.content.count(b"Required for a confirmed fault.") == 2  # kind and start
    assert b"?</textarea>" in response.content, "what was typed is kept"
    response = client.post(
        form_url(raised, "finding"),
        {"outcome": "false_alarm", "cause": "Sensor knocked", "action": "Refitted", "time_spent_minutes": "25"},
    )
    assert response.status_code == 302 and response["Location"].endswith("#sm-wo-finding")
    raised.refresh_from_db()
    assert raised.status == "done" and raised.finding.time_spent_minutes == 25
    assert Alert.objects.get(pk=raised.alert_id).status == "resolved"
    assert FaultLabel.objects.get(sensor=raised.sensor).kind == "normal"
    content = client.get(page_url(raised)).content
    assert b'id="sm-wo-outcome">False alarm<' in content
    assert shown_forms(content) == {"comment", "attach"}, "no status, assignment or finding once done"


def test_finding_form_confirmed_fault_makes_a_fault_label(raised, technician):
    start = timezone.localtime(timezone.now() - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    response = logged_in(technician).post(
        form_url(raised, "finding"),
        {"outcome": "confirmed_fault", "fault_kind": "spike", "fault_start": start, "time_spent_minutes": ""},
    )
    assert response.status_code == 302
    label = FaultLabel.objects.get(sensor=raised.sensor)
    assert label.kind == "spike" and label.source == "staff"
    assert timezone.localtime(label.start).strftime("%Y-%m-%dT%H:%M") == start


@pytest.mark.parametrize("person", ["viewer", "other_technician"])
def test_viewers_and_other_technicians_see_no_form_and_are_refused(raised, person, request):
    client = logged_in(request.getfixturevalue(person))
    page = client.get(page_url(raised))
    assert page.status_code == 200 and shown_forms(page.content) == set()
    for name in FORMS:
        assert client.post(form_url(raised, name), {"text": "x", "status": "cancelled"}).status_code == 403, name
    raised.refresh_from_db()
    assert raised.status == "assigned" and not raised.events.filter(kind="comment").exists()


def test_a_technician_cannot_assign_and_other_sites_are_not_found(raised, technician, south_technician, manager):
    assert logged_in(technician).post(form_url(raised, "assign"), {"assignee": ""}).status_code == 403
    south = logged_in(south_technician)
    assert south.get(page_url(raised)).status_code == 404
    assert south.post(form_url(raised, "comment"), {"text": "x"}).status_code == 404
    assert logged_in(manager).get(form_url(raised, "comment")).status_code == 405


def test_forms_need_the_csrf_token(raised, technician):
    client = Client(enforce_csrf_checks=True)
    client.force_login(technician)
    assert client.post(form_url(raised, "comment"), {"text": "x"}).status_code == 403
    assert not raised.events.filter(kind="comment").exists()


def test_a_work_order_raised_from_an_anomaly_shows_it_with_its_chart(north_sensor, manager):
    from maintenance.services import work_order_raise_from_anomaly
    from tests.maintenance.conftest import make_anomaly

    now = timezone.now().replace(second=0, microsecond=0)
    fill(north_sensor, 180, end=now)
    anomaly = make_anomaly(north_sensor, start=now - timedelta(hours=2), end=now - timedelta(hours=1))
    work_order, _ = work_order_raise_from_anomaly(anomaly=anomaly, user=manager)
    text = logged_in(manager).get(page_url(work_order)).content.decode()
    assert f'href="/admin/mlops/anomaly/{anomaly.pk}/change/"' in text and "score 0.90" in text
    assert 'id="sm-chart-data" type="application/json"' in text
    assert "Raised from anomaly" in text


def test_the_list_and_the_page_keep_their_queries_as_rows_grow(raised, manager, technician):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = logged_in(manager)

    def queries(url):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    list_before, page_before = queries(LIST), queries(page_url(raised))
    for n in range(5):
        work_order_create(asset=raised.asset, title=f"Job {n}", user=manager, assignee=technician)
        client.post(form_url(raised, "comment"), {"text": f"Note {n}"})
        photo = SimpleUploadedFile(f"p{n}.png", PNG, content_type="image/png")
        client.post(form_url(raised, "attach"), {"file": photo})
    assert queries(LIST) == list_before
    assert queries(page_url(raised)) == page_before

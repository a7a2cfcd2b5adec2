"""The console's pages: dashboard, sensor and asset lists (bounded queries), sensor page, readings browser."""

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from readings import selectors
from readings.choices import FaultKind
from readings.models import FaultLabel, Reading
from readings.selectors import CHART_MAX_POINTS
from sensors.choices import SensorStatus
from sensors.models import Sensor
from tests.admin.conftest import fill
from tests.factories import AssetFactory, SensorFactory

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)
END = datetime(2026, 1, 1, tzinfo=UTC)


def chart_payload(response) -> dict:
    match = re.search(rb'<script id="sm-chart-data" type="application/json">(.*?)</script>', response.content, re.S)
    assert match, "no chart data on the page"
    return json.loads(match.group(1))


def make_fleet(count: int, *, now=None) -> list[Sensor]:
    """``count`` sensors on ``count // 4 + 1`` assets, each with a day of readings every 10 minutes."""
    now = now or timezone.now().replace(second=0, microsecond=0)
    assets = [AssetFactory() for _ in range(count // 4 + 1)]
    sensors = []
    for n in range(count):
        sensor = SensorFactory(asset=assets[n // 4])
        fill(sensor, 144, end=now - n * timedelta(minutes=7), step=timedelta(minutes=10), value=lambda i: 30.0 + i % 7)
        sensors.append(sensor)
    return sensors


# --- Dashboard ---------------------------------------------------------------------------------------------------


def test_dashboard_counts_the_fleet_and_lists_sensors_needing_attention(staff_client, live_sensor):
    hot = SensorFactory(sensor_id="hot-001")
    fill(hot, 10, value=lambda i: 95.0)
    gone = SensorFactory(sensor_id="gone-001")
    fill(gone, 10, end=timezone.now() - timedelta(days=2), value=lambda i: 40.0)
    SensorFactory(sensor_id="parked", status=SensorStatus.MAINTENANCE)
    response = staff_client.get("/admin/")
    dashboard = response.context["dashboard"]
    assert dashboard["asset_total"] == 4 and dashboard["sensor_total"] == 4
    assert {row["value"]: row["count"] for row in dashboard["sensors"]}["maintenance"] == 1
    assert {row["value"]: row["count"] for row in dashboard["connectivity"]} == {
        "online": 2,
        "stale": 0,
        "offline": 1,
        "no_data": 1,
    }
    assert dashboard["out_of_range"] == 1
    assert dashboard["readings_24h"] == 24 * 60 + 10  # live_sensor's last day (now - 24 h included) and hot's 10
    assert [item["sensor_id"] for item in dashboard["attention"]["items"]] == ["hot-001", "gone-001"]
    html = response.content.decode()
    assert f'href="/admin/sensors/sensor/{hot.pk}/change/"' in html
    assert 'id="sm-alerts"' not in html, "no alerts section without an alerts provider"


def test_dashboard_shows_the_50_most_severe_and_counts_the_rest(staff_client):
    make_fleet(60, now=timezone.now() - timedelta(days=3))  # all offline
    response = staff_client.get("/admin/")
    attention = response.context["dashboard"]["attention"]
    assert len(attention["items"]) == 50 and attention["total"] == 60
    assert b"Showing the 50 most severe" in response.content
    assert b'href="/admin/sensors/sensor/?signal=attention"' in response.content


def test_dashboard_queries_do_not_grow_with_the_fleet(staff_client):
    make_fleet(4)
    staff_client.get("/admin/")  # session, content types and the cache warmed
    with CaptureQueriesContext(connection) as small:
        staff_client.get("/admin/")
    make_fleet(40)
    with CaptureQueriesContext(connection) as large:
        staff_client.get("/admin/")
    assert len(large) <= len(small) + 2  # the cache misses of the 40 new sensors' latest readings and the count


def test_dashboard_gets_an_alerts_section_once_alerts_are_provided(staff_client, live_sensor):
    selectors.register_alerts(
        lambda *, limit: [{"sensor_id": "live-001", "title": "Bearing wear", "opened_at": timezone.now() - H}]
    )
    html = staff_client.get("/admin/").content.decode()
    assert 'id="sm-alerts"' in html and "Bearing wear" in html
    assert "open alert" in html


# --- Sensor list -------------------------------------------------------------------------------------------------


def test_sensor_list_shows_last_value_age_status_and_sparkline(staff_client, live_sensor):
    hot = SensorFactory(sensor_id="hot-001", unit="°C")
    fill(hot, 120, value=lambda i: 95.5)
    html = staff_client.get("/admin/sensors/sensor/").content.decode()
    rows = {re.search(r">([\w-]+)</a></th>", row).group(1): row for row in html.split("<tr>")[2:]}
    row = rows["hot-001"]
    assert "95.5 °C" in row and "sm-out-of-range" in row
    assert "sm-badge--online" in row and "sm-badge--out_of_range" in row
    spark = re.search(r'<div class="sm-sparkline"[^>]*data-x="([^"]*)" data-y="([^"]*)"', row)
    assert spark and len(json.loads(spark.group(1))) == len(json.loads(spark.group(2))) >= 2
    assert len(json.loads(re.search(r'data-x="([^"]*)"', rows["live-001"]).group(1))) == 24


def test_sensor_list_queries_do_not_grow_with_the_rows_shown(staff_client):
    make_fleet(3)
    staff_client.get("/admin/sensors/sensor/")  # latest readings cached, session warmed
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get("/admin/sensors/sensor/").status_code == 200
    make_fleet(30)
    staff_client.get("/admin/sensors/sensor/")  # the new sensors' latest readings cached
    with CaptureQueriesContext(connection) as many:
        response = staff_client.get("/admin/sensors/sensor/")
    assert response.content.count(b'class="sm-sparkline"') == 33
    assert len(many) == len(few), [q["sql"][:120] for q in many]
    # Warm, the sparklines come from the cache (keyed by each sensor's newest reading); cold, one query draws
    # every sparkline on the page.
    assert sum('"readings_reading"' in q["sql"] for q in many) == 0
    cache.clear()
    with CaptureQueriesContext(connection) as cold:
        staff_client.get("/admin/sensors/sensor/")
    assert sum('"readings_reading"' in q["sql"] and "LATERAL" in q["sql"] for q in cold) == 1


def test_asset_list_queries_do_not_grow_and_count_sensors_needing_attention(staff_client):
    make_fleet(4)
    staff_client.get("/admin/sensors/asset/")
    with CaptureQueriesContext(connection) as few:
        staff_client.get("/admin/sensors/asset/")
    sensors = make_fleet(40, now=timezone.now() - timedelta(days=1))  # offline: all need attention
    staff_client.get("/admin/sensors/asset/")
    with CaptureQueriesContext(connection) as many:
        response = staff_client.get("/admin/sensors/asset/")
    assert len(many) == len(few)
    link = f'?asset__id__exact={sensors[0].asset_id}&amp;signal=attention">4</a>'
    assert link in response.content.decode()


@pytest.mark.parametrize(
    ("signal", "expected"),
    [("online", ["live-001"]), ("offline", ["gone-001"]), ("no_data", ["new-001"]), ("attention", ["gone-001"])],
)
def test_sensor_list_filters_by_signal(staff_client, live_sensor, signal, expected):
    gone = SensorFactory(sensor_id="gone-001")
    fill(gone, 10, end=timezone.now() - timedelta(days=2), value=lambda i: 40.0)
    SensorFactory(sensor_id="new-001")
    response = staff_client.get(f"/admin/sensors/sensor/?signal={signal}")
    assert [sensor.sensor_id for sensor in response.context["cl"].result_list] == expected


def test_sensor_list_filters_by_site_asset_type_and_status_and_searches(staff_client):
    north = SensorFactory(sensor_id="north-1", asset__site="North Plant")
    south = SensorFactory(sensor_id="south-1", asset__site="South Plant", sensor_type="vibration")
    SensorFactory(sensor_id="south-2", asset=south.asset, status=SensorStatus.MAINTENANCE)

    def listed(query):
        response = staff_client.get(f"/admin/sensors/sensor/?{query}")
        return sorted(sensor.sensor_id for sensor in response.context["cl"].result_list)

    assert listed("asset__site=South+Plant") == ["south-1", "south-2"]
    assert listed(f"asset__id__exact={north.asset_id}") == ["north-1"]
    assert listed("sensor_type__exact=vibration") == ["south-1"]
    assert listed("status__exact=maintenance") == ["south-2"]
    assert listed("q=north") == ["north-1"]


def test_set_status_action_changes_and_logs_only_what_changed(staff_client, staff):
    one, two = SensorFactory(), SensorFactory(status=SensorStatus.MAINTENANCE)
    response = staff_client.post(
        "/admin/sensors/sensor/",
        {"action": "set_status_maintenance", "_selected_action": [one.pk, two.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert set(Sensor.objects.values_list("status", flat=True)) == {SensorStatus.MAINTENANCE}
    assert [entry.object_id for entry in LogEntry.objects.filter(user=staff)] == [str(one.pk)]
    assert b"1 sensor(s) set to maintenance" in response.content


def test_export_action_asks_for_a_range_then_streams_each_sensors_readings(staff_client):
    end = timezone.now().replace(second=0, microsecond=0)
    one, two = SensorFactory(sensor_id="exp-1"), SensorFactory(sensor_id="exp-2")
    fill(one, 90, end=end)
    fill(two, 5, end=end - timedelta(days=3))  # quiet for days: its last hour is exported
    form = staff_client.post(
        "/admin/sensors/sensor/", {"action": "export_readings_csv", "_selected_action": [one.pk, two.pk]}
    )
    assert form.status_code == 200 and b'name="range"' in form.content
    response = staff_client.post(
        "/admin/sensors/sensor/",
        {"action": "export_readings_csv", "_selected_action": [one.pk, two.pk], "apply": "1", "range": "1h"},
    )
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["sensor_id", "time", "value", "quality"]
    assert [row[0] for row in rows[1:]] == ["exp-1"] * 60 + ["exp-2"] * 5
    bad = staff_client.post(
        "/admin/sensors/sensor/",
        {
            "action": "export_readings_csv",
            "_selected_action": [one.pk],
            "apply": "1",
            "range": "custom",
            "from": "2026-02-02T00:00",
            "to": "2026-02-01T00:00",
        },
    )
    assert bad.status_code == 200 and b"must start before it ends" in bad.content


def test_sensor_with_readings_cannot_be_deleted_only_decommissioned(superuser_client, live_sensor):
    empty = SensorFactory()
    page = superuser_client.get(f"/admin/sensors/sensor/{live_sensor.pk}/change/")
    assert b'class="deletelink"' not in page.content
    assert superuser_client.get(f"/admin/sensors/sensor/{live_sensor.pk}/delete/").status_code == 403
    actions = superuser_client.get("/admin/sensors/sensor/").context["action_form"].fields["action"].choices
    assert "delete_selected" not in [name for name, _ in actions]
    assert "set_status_decommissioned" in [name for name, _ in actions]
    assert superuser_client.post(f"/admin/sensors/sensor/{empty.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Sensor.objects.filter(pk=empty.pk).exists()


# --- Sensor page -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "points"), [("1h", 60), ("24h", 1440), ("7d", 1008), ("30d", 1440)])
def test_sensor_page_charts_each_range_within_2000_points(staff_client, live_sensor, preset, points):
    response = staff_client.get(f"/admin/sensors/sensor/{live_sensor.pk}/change/?range={preset}")
    chart = chart_payload(response)
    assert len(chart["x"]) <= CHART_MAX_POINTS
    assert len(chart["x"]) in (points, points + 1)  # + 1 when the range is not aligned to the bucket
    assert chart["points"] > 0
    assert chart["normal_min"] == 10.0 and chart["normal_max"] == 80.0
    assert response.context["sensor_page"]["range"].key == preset


def test_sensor_page_custom_range_of_years_still_sends_at_most_2000_points(staff_client, live_sensor):
    url = f"/admin/sensors/sensor/{live_sensor.pk}/change/?range=custom&from=2021-01-01T00:00&to=2026-12-31T00:00"
    chart = chart_payload(staff_client.get(url))
    assert len(chart["x"]) <= CHART_MAX_POINTS and chart["points"] > 0


def test_sensor_page_of_a_quiet_sensor_shows_its_last_signal(staff_client):
    sensor = SensorFactory()
    fill(sensor, 120, end=END)
    FaultLabel.objects.create(sensor=sensor, kind=FaultKind.SPIKE, start=END - 10 * timedelta(minutes=1), end=END)
    response = staff_client.get(f"/admin/sensors/sensor/{sensor.pk}/change/?range=1h")
    chosen = response.context["sensor_page"]["range"]
    assert chosen.anchored and chosen.end == END + timedelta(minutes=1)
    chart = chart_payload(response)
    assert chart["points"] == 60
    assert [mark["name"] for mark in chart["marks"]] == ["Spike"]
    assert b"up to the last reading" in response.content
    latest = response.context["sensor_page"]["latest"]
    assert len(latest) == 10 and latest[0]["time"] == END


def test_sensor_page_bad_custom_range_falls_back_with_a_message(staff_client, live_sensor):
    response = staff_client.get(f"/admin/sensors/sensor/{live_sensor.pk}/change/?range=custom&from=soon&to=later")
    assert response.status_code == 200
    assert response.context["sensor_page"]["range"].key == "24h"
    assert b"errornote" in response.content


def test_sensor_page_csv_link_exports_exactly_the_charted_range(staff_client, live_sensor):
    page = staff_client.get(f"/admin/sensors/sensor/{live_sensor.pk}/change/?range=1h")
    link = re.search(rb'href="([^"]*readings\.csv\?[^"]*)"', page.content).group(1).decode().replace("&amp;", "&")
    chosen = page.context["sensor_page"]["range"]
    response = staff_client.get(link)
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))[1:]
    expected = Reading.objects.filter(sensor=live_sensor, time__gte=chosen.start, time__lt=chosen.end).count()
    assert len(rows) == expected > 0
    assert rows == sorted(rows, key=lambda row: row[1])
    assert staff_client.get(f"/admin/sensors/sensor/{live_sensor.pk}/readings.csv?from=nonsense").status_code == 400


# --- Readings browser ----------------------------------------------------------------------------------------------


def test_readings_browser_pages_by_keyset_without_counting(staff_client):
    sensor = SensorFactory()
    times = fill(sensor, 250, end=END)
    url = f"/admin/readings/browse/?sensor={sensor.pk}&size=100"
    seen, sql = [], []
    while url:
        with CaptureQueriesContext(connection) as queries:
            response = staff_client.get(url)
        sql += [query["sql"].upper() for query in queries]
        seen += [row["time"] for row in response.context["rows"]]
        url = response.context["older_url"] and "/admin/readings/browse/" + response.context["older_url"]
    assert seen == times[::-1]
    readings_sql = [statement for statement in sql if "READINGS_READING" in statement]
    assert readings_sql and not any("COUNT(" in statement or "OFFSET" in statement for statement in readings_sql)
    # Back from the last page: the one before it.
    newer = staff_client.get("/admin/readings/browse/" + response.context["newer_url"])
    assert [row["time"] for row in newer.context["rows"]] == times[149:49:-1]


def test_readings_browser_respects_the_range_and_costs_the_same_on_every_page(staff_client):
    sensor = SensorFactory()
    times = fill(sensor, 500, end=END)
    base = f"/admin/readings/browse/?sensor={sensor.pk}&size=50&from=2025-12-31T20:00&to=2025-12-31T23:00"
    first = staff_client.get(base)
    assert first.context["rows"][0]["time"] == datetime(2025, 12, 31, 22, 59, tzinfo=UTC)
    with CaptureQueriesContext(connection) as page_one:
        staff_client.get(base)
    with CaptureQueriesContext(connection) as page_three:
        response = staff_client.get(f"{base}&before=2025-12-31T21:20:00%2B00:00")
    assert len(page_one) == len(page_three)
    assert response.context["rows"][-1]["time"] == datetime(2025, 12, 31, 20, 30, tzinfo=UTC)
    assert times[-1] == END


def test_readings_browser_without_a_sensor_asks_for_one(staff_client):
    response = staff_client.get("/admin/readings/browse/")
    assert response.status_code == 200 and b"Choose a sensor" in response.content


def test_readings_browser_is_linked_from_the_index(staff_client):
    html = staff_client.get("/admin/").content.decode()
    assert 'href="/admin/readings/browse/"' in html and "Readings browser" in html

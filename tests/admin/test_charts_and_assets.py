"""Charts that always draw (buckets from the sensor's sampling interval and the range) and assets seen whole (the
asset page's stacked charts, the plant tree)."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from readings.choices import FaultKind
from readings.models import FaultLabel
from readings.selectors import CHART_BUCKETS, CHART_MAX_POINTS, chart_bucket
from tests.admin.conftest import fill
from tests.factories import AssetFactory, SensorFactory

pytestmark = pytest.mark.django_db
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)
END = datetime(2026, 1, 1, tzinfo=UTC)


def payload(response, script_id: str):
    match = re.search(
        rf'<script id="{script_id}" type="application/json">(.*?)</script>'.encode(), response.content, re.S
    )
    assert match, f"no {script_id} on the page"
    return json.loads(match.group(1))


# --- Bucket choice ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "span", "bucket"),
    [
        (5 * M, H, 5 * M),  # never finer than the data: 12 buckets, each with its reading
        (5 * M, 24 * H, 5 * M),
        (5 * M, 30 * D, 30 * M),  # the point budget, not the data, decides
        (S, H, 2 * S),
        (S, 30 * D, 30 * M),
        (M, 24 * H, M),
        (10 * M, H, 10 * M),
        (2 * D, 7 * D, 2 * D),  # slower than the widest bucket: whole days, still no finer than the data
    ],
)
def test_chart_bucket_follows_the_sampling_interval_and_the_range(interval, span, bucket):
    assert chart_bucket(span, interval=interval) == bucket


@pytest.mark.parametrize("interval", [S, 7 * S, M, 90 * S, 5 * M, H, D])
@pytest.mark.parametrize("span", [H, 24 * H, 7 * D, 30 * D, 365 * D])
def test_chart_bucket_is_never_finer_than_the_data_nor_over_budget(interval, span):
    bucket = chart_bucket(span, interval=interval)
    assert bucket >= interval
    assert span // bucket + 1 <= CHART_MAX_POINTS
    # The narrowest that does both.
    assert all(width < interval or span // width + 1 > CHART_MAX_POINTS for width in CHART_BUCKETS if width < bucket)


@pytest.mark.parametrize(("preset", "buckets"), [("1h", 12), ("24h", 288)])
def test_a_five_minute_sensor_fills_every_bucket_at_1h_and_24h(staff_client, preset, buckets):
    sensor = SensorFactory(sampling_interval=300)
    now = timezone.now()
    fill(sensor, 400, end=now.replace(second=0, microsecond=0), step=5 * M, value=lambda i: 40.0 + i % 9)
    response = staff_client.get(f"/admin/sensors/sensor/{sensor.pk}/change/?range={preset}")
    chart = payload(response, "sm-chart-data")
    assert chart["bucket_seconds"] == 300
    assert len(chart["x"]) in (buckets, buckets + 1)
    # Every bucket with a reading in it, bar the partly covered first and last: neighbours join into a line.
    filled = [value is not None for value in chart["avg"]]
    assert sum(filled) >= buckets - 1
    assert any(filled[i] and filled[i + 1] for i in range(len(filled) - 1))
    assert response.context["sensor_page"]["bucket"] == "5m"


def test_a_one_second_sensor_at_30_days_stays_within_the_budget(staff_client):
    sensor = SensorFactory(sampling_interval=1)
    now = timezone.now().replace(second=0, microsecond=0)
    # An hour of one-second readings now and then over the month: enough to fill some 30-minute buckets.
    for day in range(0, 30, 3):
        fill(sensor, 600, end=now - day * D, step=S, value=lambda i: float(i % 50))
    chart = payload(staff_client.get(f"/admin/sensors/sensor/{sensor.pk}/change/?range=30d"), "sm-chart-data")
    assert chart["bucket_seconds"] == 1800 and len(chart["x"]) <= CHART_MAX_POINTS
    assert chart["points"] >= 10


def test_each_fault_kind_is_its_own_series_on_the_page(staff_client):
    sensor = SensorFactory()
    fill(sensor, 120, end=END)
    FaultLabel.objects.create(sensor=sensor, kind=FaultKind.DEGRADATION, start=END - 2 * H, end=END)
    FaultLabel.objects.create(sensor=sensor, kind=FaultKind.SPIKE, start=END - 30 * M, end=END - 30 * M)
    FaultLabel.objects.create(sensor=sensor, kind=FaultKind.SPIKE, start=END - 10 * M, end=END - 10 * M)
    chart = payload(staff_client.get(f"/admin/sensors/sensor/{sensor.pk}/change/?range=1h"), "sm-chart-data")
    assert [(mark["name"], mark["key"]) for mark in chart["marks"]] == [
        ("Spike", "spike"),
        ("Slow degradation", "degradation"),
    ]
    assert sum(1 for value in chart["marks"][0]["values"] if value) == 2


# --- Asset page --------------------------------------------------------------------------------------------------


def make_asset(*, now, sensors=3):
    asset = AssetFactory(code="PUMP-7", name="Cooling pump", site="East Plant")
    made = []
    for n, (kind, unit, interval) in enumerate(
        [("vibration", "mm/s", 300), ("temperature", "°C", 60), ("current", "A", 1)]
    ):
        if n >= sensors:
            break
        sensor = SensorFactory(asset=asset, sensor_type=kind, unit=unit, sampling_interval=interval)
        step = timedelta(seconds=max(interval, 60))
        fill(sensor, 200, end=now, step=step, value=lambda i: 10.0 + i % 11)
        made.append(sensor)
    return asset, made


def test_asset_page_charts_every_sensor_over_one_range(staff_client):
    now = timezone.now().replace(second=0, microsecond=0)
    asset, sensors = make_asset(now=now)
    FaultLabel.objects.create(sensor=sensors[0], kind=FaultKind.DRIFT, start=now - 2 * H, end=now - H)
    response = staff_client.get(f"/admin/sensors/asset/{asset.pk}/change/?range=24h")
    assert response.status_code == 200
    charts = payload(response, "sm-asset-charts-data")
    assert [chart["sensor_id"] for chart in charts] == sorted(
        (sensor.sensor_id for sensor in sensors), key=lambda sid: [s.sensor_type for s in sensors if s.sensor_id == sid]
    )
    # One time axis: the same range for all, each with its own buckets (never finer than it reads).
    assert len({(chart["start"], chart["end"]) for chart in charts}) == 1
    by_unit = {chart["unit"]: chart for chart in charts}
    assert by_unit["mm/s"]["bucket_seconds"] == 300 and by_unit["°C"]["bucket_seconds"] == 60
    assert all(chart["points"] > 0 and chart["normal_min"] == 10.0 for chart in charts)
    assert [mark["key"] for mark in by_unit["mm/s"]["marks"]] == ["drift"]
    content = response.content.decode()
    assert content.count('class="sm-chart sm-asset-chart"') == 3
    for sensor in sensors:
        assert f"/admin/sensors/sensor/{sensor.pk}/change/?range=24h" in content
    assert 'href="/admin/plant/' in content
    assert response.context["asset_page"]["range"].key == "24h"


@pytest.mark.parametrize("preset", ["1h", "7d", "30d"])
def test_asset_page_offers_the_sensor_pages_ranges(staff_client, preset):
    now = timezone.now().replace(second=0, microsecond=0)
    asset, _ = make_asset(now=now, sensors=2)
    response = staff_client.get(f"/admin/sensors/asset/{asset.pk}/change/?range={preset}")
    charts = payload(response, "sm-asset-charts-data")
    assert all(
        chart["end"] - chart["start"] == {"1h": 3600, "7d": 7 * 86400, "30d": 30 * 86400}[preset] for chart in charts
    )
    assert all(len(chart["x"]) <= CHART_MAX_POINTS for chart in charts)


def test_asset_page_custom_range_and_a_quiet_asset(staff_client):
    asset, _ = make_asset(now=END, sensors=2)
    response = staff_client.get(f"/admin/sensors/asset/{asset.pk}/change/?range=1h")
    chosen = response.context["asset_page"]["range"]
    assert chosen.anchored and chosen.end > END - M  # up to the last reading, not an empty hour of now
    assert all(chart["points"] > 0 for chart in payload(response, "sm-asset-charts-data"))
    url = f"/admin/sensors/asset/{asset.pk}/change/?range=custom&from=2025-12-31T20:00&to=2025-12-31T23:00"
    charts = payload(staff_client.get(url), "sm-asset-charts-data")
    assert all(chart["end"] - chart["start"] == 3 * 3600 for chart in charts)


def test_asset_page_queries_grow_with_its_sensors_not_its_readings(staff_client):
    now = timezone.now().replace(second=0, microsecond=0)
    asset, _ = make_asset(now=now, sensors=2)
    with CaptureQueriesContext(connection) as two:
        staff_client.get(f"/admin/sensors/asset/{asset.pk}/change/")
    sensor = SensorFactory(asset=asset)
    fill(sensor, 1000, end=now)
    with CaptureQueriesContext(connection) as three:
        staff_client.get(f"/admin/sensors/asset/{asset.pk}/change/")
    # The inline form and the chart cost a few queries per sensor; nothing per reading.
    assert len(three) - len(two) <= 6


def test_asset_without_sensors_and_the_add_page_have_no_charts(staff_client, superuser_client):
    asset = AssetFactory()
    response = staff_client.get(f"/admin/sensors/asset/{asset.pk}/change/")
    assert response.status_code == 200 and b"has no sensors yet" in response.content
    assert b"sm-asset-charts-data" not in superuser_client.get("/admin/sensors/asset/add/").content


def test_sensor_page_shows_its_site_and_asset(staff_client):
    now = timezone.now().replace(second=0, microsecond=0)
    asset, sensors = make_asset(now=now, sensors=1)
    content = staff_client.get(f"/admin/sensors/sensor/{sensors[0].pk}/change/").content.decode()
    assert f"/admin/sensors/asset/{asset.pk}/change/?range=24h" in content
    assert "East Plant" in content


# --- Plant tree --------------------------------------------------------------------------------------------------


def test_plant_lists_sites_assets_and_sensors_with_their_state(staff_client):
    now = timezone.now().replace(second=0, microsecond=0)
    asset, sensors = make_asset(now=now, sensors=2)
    other = SensorFactory(asset=AssetFactory(code="FAN-1", site="West Plant"))
    quiet = SensorFactory(asset=asset)
    fill(quiet, 10, end=now - 2 * D)  # offline: needs attention
    response = staff_client.get("/admin/plant/?site=East+Plant")
    assert response.status_code == 200
    tree = response.context["tree"]
    assert [site["site"] for site in tree] == ["East Plant", "West Plant"]
    east = tree[0]
    assert east["attention"] == 1 and [a["code"] for a in east["assets"]] == ["PUMP-7"]
    assert {s["sensor_id"] for s in east["assets"][0]["sensors"]} == {*(s.sensor_id for s in sensors), quiet.sensor_id}
    content = response.content.decode()
    assert f"/admin/sensors/asset/{asset.pk}/change/" in content
    assert f"/admin/sensors/sensor/{other.pk}/change/" in content
    assert 'id="site-east-plant" open' in content


def test_plant_needs_the_view_sensor_permission(user_client, staff_client):
    assert user_client.get("/admin/plant/").status_code == 302  # not staff: to the login page
    assert staff_client.get("/admin/plant/").status_code == 200


def test_plant_is_in_the_sensors_app_of_the_index(staff_client):
    content = staff_client.get("/admin/").content.decode()
    assert 'href="/admin/plant/"' in content
    assert 'href="/admin/plant/"' in staff_client.get("/admin/sensors/").content.decode()


def test_dates_read_one_way_across_the_console(staff_client):
    """ISO dates and 24-hour times, as the charts draw them, not Django's "Dec. 1, 2026, 10:54 p.m."."""
    asset = AssetFactory()
    content = staff_client.get(f"/admin/sensors/asset/{asset.pk}/change/").content.decode()
    assert timezone.localtime(asset.created_at).strftime("%Y-%m-%d %H:%M") in content
    assert "a.m." not in content and "p.m." not in content
    listing = staff_client.get("/admin/sensors/asset/").content.decode()
    assert timezone.localtime(asset.updated_at).strftime("%Y-%m-%d %H:%M") in listing


@pytest.mark.parametrize("span", [H, 7 * D, 400 * D])
def test_chart_columns_are_the_api_aggregates_filled_with_nulls(span, settings):
    """sensor_chart fills its buckets in integers, not through readings_buckets: the same numbers, bucket by bucket,
    also where the range starts before READINGS_MIN_TIME (clamped alike) or is empty."""
    from readings.aggregates import readings_buckets
    from readings.selectors import sensor_chart

    sensor = SensorFactory(sampling_interval=30)
    fill(sensor, 600, end=END - 7 * M, step=timedelta(seconds=30), value=lambda i: float(i % 13))
    settings.READINGS_MIN_TIME = END - 2 * D
    for start, end in ((END - span + 17 * S, END), (END - 2 * D - span, END - 2 * D + H), (END, END)):
        chart = sensor_chart(sensor=sensor, start=start, end=end)
        bucket = timedelta(seconds=chart["bucket_seconds"])
        rows = readings_buckets(
            sensor_pk=sensor.pk, start=start, end=end, bucket=bucket, aggs=("avg", "min", "max"), fill="null"
        )
        assert chart["x"] == [int(row["bucket"].timestamp()) for row in rows]
        assert (chart["avg"], chart["min"], chart["max"]) == tuple(
            [row[agg] for row in rows] for agg in ("avg", "min", "max")
        )

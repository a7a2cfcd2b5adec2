"""Hot spots (issue 15): the sensor list's rows written directly (same markup as Django's own path), its
sparklines cached per sensor under its newest reading, and the cache's decoding of pickled values."""

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.forms.renderers import get_default_renderer
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from readings import selectors
from readings.admin import SensorAdmin
from readings.choices import FaultKind
from readings.models import FaultLabel
from tests.admin.conftest import fill
from tests.factories import AssetFactory, SensorFactory

pytestmark = pytest.mark.django_db


def rows(html: str) -> list[str]:
    body = re.search(r"<tbody>(.*?)</tbody>", html, re.S).group(1)
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def test_the_fast_rows_are_the_rows_django_writes(superuser_client, monkeypatch):
    for n in range(3):
        sensor = SensorFactory()
        fill(sensor, 30, value=lambda i, n=n: 95.0 if n == 1 else 40.0)
    url = "/admin/sensors/sensor/?sensor_type__exact=temperature"
    fast = rows(superuser_client.get(url).content.decode())
    monkeypatch.setattr(SensorAdmin, "result_cells", lambda self, obj, changelist: None)
    generic = rows(superuser_client.get(url).content.decode())
    assert len(fast) == len(generic) == 3
    # The same cells; only "now" (the age's text) may move between the two requests.
    strip = lambda row: re.sub(r"\s+", " ", re.sub(r"<time[^>]*>.*?</time>", "", row)).strip()  # noqa: E731
    assert [strip(row) for row in fast] == [strip(row) for row in generic]
    assert "_changelist_filters=sensor_type__exact" in fast[0]


def test_a_sparkline_follows_a_new_reading_through_its_cache(staff_client):
    sensor = SensorFactory()
    now = timezone.now().replace(second=0, microsecond=0)
    fill(sensor, 60, end=now - timedelta(hours=1), value=lambda i: 40.0)

    def line():
        html = staff_client.get("/admin/sensors/sensor/").content.decode()
        return re.search(r'class="sm-sparkline"[^>]*data-y="([^"]*)"', html).group(1)

    before = line()
    assert line() == before  # from the cache
    fill(sensor, 1, end=now, value=lambda i: 70.0)
    cache.delete(f"readings:latest:{sensor.pk}")  # what ingest does for the sensors it wrote to
    assert line() != before


def test_the_cache_decodes_pickles_and_integers():
    cache.set("hot-spots:pickled", {"reading": {"value": 1.5}})
    cache.set("hot-spots:integer", 42)
    cache.set("hot-spots:text", "plain")
    assert cache.get_many(["hot-spots:pickled", "hot-spots:integer", "hot-spots:text"]) == {
        "hot-spots:pickled": {"reading": {"value": 1.5}},
        "hot-spots:integer": 42,
        "hot-spots:text": "plain",
    }


def test_the_asset_filter_builds_the_same_links(staff_client):
    sensors = [SensorFactory() for _ in range(3)]
    url = "/admin/sensors/sensor/?status__exact=active"
    html = staff_client.get(url).content.decode()
    options = dict(re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', html))
    for sensor in sensors:
        query = next(value for value, label in options.items() if label.strip() == str(sensor.asset))
        response = staff_client.get("/admin/sensors/sensor/" + query.replace("&amp;", "&"))
        assert [s.pk for s in response.context["cl"].result_list] == [sensor.pk]
    assert "?status__exact=active" in options  # "All" keeps the other filters


def test_an_asset_pages_charts_are_each_sensors_chart_in_as_many_queries(staff_client, monkeypatch):
    """sensor_charts (the asset page) draws what sensor_chart draws for each sensor, with its buckets, labels and
    each marks provider's marks read once for all sensors, not once per sensor."""
    monkeypatch.setattr(selectors, "_chart_mark_batches", {})
    end = timezone.now().replace(second=0, microsecond=0)
    asset = AssetFactory()
    sensors = [SensorFactory(asset=asset, sampling_interval=interval) for interval in (60, 300, 1)]
    for n, sensor in enumerate(sensors):
        fill(sensor, 120, end=end, value=lambda i, n=n: float(i * (n + 1)))
    FaultLabel.objects.create(sensor=sensors[1], kind=FaultKind.SPIKE, start=end - timedelta(minutes=30), end=end)

    def one(*, sensor, start, end):
        return [{"series": "Per sensor", "label": sensor.sensor_id, "start": end - timedelta(minutes=5), "end": end}]

    def provider(*, sensor, start, end):
        return [{"series": "Batched", "label": f"x{sensor.pk}", "start": start, "end": start + timedelta(minutes=9)}]

    def many(*, sensors, start, end):
        return {sensor.pk: provider(sensor=sensor, start=start, end=end) for sensor in sensors}

    selectors.register_chart_marks(one)
    selectors.register_chart_marks(provider, many=many)
    start = end - timedelta(hours=2)
    assert selectors.sensor_charts(sensors=sensors, start=start, end=end) == [
        selectors.sensor_chart(sensor=sensor, start=start, end=end) for sensor in sensors
    ]
    monkeypatch.setattr(selectors, "_chart_mark_providers", [provider])
    url = f"/admin/sensors/asset/{asset.pk}/change/?range=24h"
    assert staff_client.get(url).status_code == 200  # once-per-process lookups out of the way
    with CaptureQueriesContext(connection) as three:
        staff_client.get(url)
    more = SensorFactory(asset=asset)
    fill(more, 10, end=end)
    staff_client.get(url)  # its newest reading into the cache, like the others'
    with CaptureQueriesContext(connection) as four:
        staff_client.get(url)
    assert len(four) == len(three)


def test_the_asset_page_is_the_same_with_either_renderer(superuser_client, settings):
    sensor = SensorFactory()
    SensorFactory(asset=sensor.asset, status="maintenance", normal_min=None)
    url = f"/admin/sensors/asset/{sensor.asset.pk}/change/"

    def page(renderer: str) -> str:
        settings.FORM_RENDERER = renderer
        get_default_renderer.cache_clear()
        try:
            html = superuser_client.get(url).content.decode()
        finally:
            get_default_renderer.cache_clear()
        html = re.sub(r'<script id="[^"]*" type="application/json">.*?</script>', "", html, flags=re.S)  # charts
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)

    direct = page("smartmaint.form_renderer.DirectRenderer")
    assert direct == page("django.forms.renderers.DjangoTemplates")
    assert direct.count("<select") >= 4


def test_the_asset_filter_reads_only_what_it_shows(staff_client):
    sensors = [SensorFactory(), SensorFactory()]
    with CaptureQueriesContext(connection) as queries:
        html = staff_client.get("/admin/sensors/sensor/").content.decode()
    [choices] = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "sensors_asset"."id"')]
    assert '"metadata"' not in choices and '"notes"' not in choices
    options = [label.strip() for label in re.findall(r"<option [^>]*>([^<]*)</option>", html)]
    assert all(str(sensor.asset) in options for sensor in sensors)


def test_a_chart_of_a_past_range_is_cached_until_readings_are_written():
    sensor = SensorFactory(sampling_interval=60)
    end = timezone.now().replace(second=0, microsecond=0) - timedelta(days=2)
    start = end - timedelta(hours=2)
    fill(sensor, 30, end=end - timedelta(hours=1), value=lambda i: 1.0)
    first = selectors.sensor_chart(sensor=sensor, start=start, end=end)
    with CaptureQueriesContext(connection) as queries:
        assert selectors.sensor_chart(sensor=sensor, start=start, end=end) == first
    assert not any("readings_reading" in query["sql"] for query in queries.captured_queries)
    # Marks are read each time; only the buckets are cached.
    FaultLabel.objects.create(sensor=sensor, kind=FaultKind.SPIKE, start=end - timedelta(minutes=90), end=end)
    assert [mark["key"] for mark in selectors.sensor_chart(sensor=sensor, start=start, end=end)["marks"]] == ["spike"]
    # A late reading inside the range (the sensor's newest stays as it was), written as every write of readings
    # is: the chart shows it at once.
    fill(sensor, 1, end=end - timedelta(minutes=10), value=lambda i: 9.0)
    selectors.latest_cache_forget([sensor.pk])
    assert max(v for v in selectors.sensor_chart(sensor=sensor, start=start, end=end)["max"] if v) == 9.0

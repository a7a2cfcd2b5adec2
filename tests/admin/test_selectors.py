"""The admin console's reads: chart points, marks, sparklines, sensors needing attention, counts, keyset pages."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from readings import selectors
from readings.aggregates import BUCKETS, bucket_floor, readings_buckets
from readings.choices import FaultKind
from readings.models import FaultLabel, Reading
from readings.selectors import (
    CHART_MAX_POINTS,
    attention_items,
    chart_bucket,
    fleet_status,
    readings_page,
    readings_recent_count,
    sensor_chart,
    sensor_latest_readings,
    sensor_sparklines,
    sparkline_window,
)
from sensors.choices import SensorStatus
from sensors.models import Sensor
from tests.admin.conftest import fill
from tests.factories import SensorFactory

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)
END = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "span",
    [timedelta(minutes=5), H, 24 * H, timedelta(days=7), timedelta(days=30), timedelta(days=365), timedelta(days=3650)],
)
def test_chart_bucket_keeps_any_range_within_the_point_budget(span):
    bucket = chart_bucket(span)
    # Unaligned ranges touch one more bucket than span / bucket.
    assert span // bucket + 1 <= CHART_MAX_POINTS
    narrower = [width for width in BUCKETS.values() if width < bucket]
    assert all(span // width + 1 > CHART_MAX_POINTS for width in narrower), "not the narrowest that fits"


def test_chart_bucket_for_the_page_presets():
    assert [chart_bucket(span) for span in (H, 24 * H, timedelta(days=7), timedelta(days=30))] == [
        BUCKETS["1m"],
        BUCKETS["1m"],
        BUCKETS["10m"],
        BUCKETS["30m"],
    ]


@pytest.mark.parametrize("span", [H, 24 * H, timedelta(days=7), timedelta(days=30), timedelta(days=400)])
def test_sensor_chart_has_the_api_aggregates_and_at_most_2000_points(span):
    sensor = SensorFactory()
    fill(sensor, 3 * 24 * 60, end=END, value=lambda i: float(i % 97))
    start = END - span + timedelta(seconds=17)  # unaligned on purpose
    chart = sensor_chart(sensor=sensor, start=start, end=END)
    assert 0 < len(chart["x"]) <= CHART_MAX_POINTS
    bucket = chart_bucket(END - start)
    reference = readings_buckets(
        sensor_pk=sensor.pk, start=start, end=END, bucket=bucket, aggs=("avg", "min", "max"), fill="null"
    )
    assert chart["x"] == [int(row["bucket"].timestamp()) for row in reference]
    assert chart["avg"] == [row["avg"] for row in reference]
    assert chart["min"] == [row["min"] for row in reference]
    assert chart["max"] == [row["max"] for row in reference]
    assert chart["points"] == sum(1 for value in chart["avg"] if value is not None)


def test_sensor_chart_keeps_gaps_as_nulls():
    sensor = SensorFactory()
    fill(sensor, 30, end=END - 30 * timedelta(minutes=1))
    chart = sensor_chart(sensor=sensor, start=END - H, end=END)
    assert len(chart["x"]) == 60
    assert chart["avg"][:30] != [None] * 30 and chart["avg"][31:] == [None] * 29


def test_fault_labels_are_marked_on_the_buckets_they_overlap():
    sensor = SensorFactory()
    fill(sensor, 60, end=END - timedelta(minutes=1))
    FaultLabel.objects.create(
        sensor=sensor, kind=FaultKind.SPIKE, start=END - timedelta(minutes=30), end=END - timedelta(minutes=30)
    )
    FaultLabel.objects.create(
        sensor=sensor,
        kind=FaultKind.STUCK,
        start=END - timedelta(minutes=10, seconds=30),
        end=END - timedelta(minutes=8, seconds=1),
    )
    FaultLabel.objects.create(sensor=sensor, kind=FaultKind.DRIFT, start=END - 5 * H, end=END - 2 * H)  # outside
    chart = sensor_chart(sensor=sensor, start=END - H, end=END)
    # A series per fault kind (its own colour and legend entry), in the kinds' order.
    spike, stuck = chart["marks"]
    assert (spike["name"], spike["key"]) == ("Spike", "spike")
    assert (stuck["name"], stuck["key"]) == ("Stuck value (flatline)", "stuck")
    # One-minute buckets from END - 1h: the spike hits bucket 30, the stuck period buckets 49 to 51.
    assert [index for index, value in enumerate(spike["values"]) if value] == [30]
    assert [index for index, value in enumerate(stuck["values"]) if value] == [49, 50, 51]
    assert spike["labels"][30] == "Spike" and stuck["labels"][50] == "Stuck value (flatline)"
    assert spike["labels"][0] is None


def test_a_long_degradation_does_not_hide_the_shorter_faults_inside_it():
    sensor = SensorFactory()
    fill(sensor, 60, end=END - timedelta(minutes=1))
    FaultLabel.objects.create(sensor=sensor, kind=FaultKind.DEGRADATION, start=END - H, end=END)
    FaultLabel.objects.create(
        sensor=sensor, kind=FaultKind.SPIKE, start=END - timedelta(minutes=20), end=END - timedelta(minutes=20)
    )
    chart = sensor_chart(sensor=sensor, start=END - H, end=END)
    by_key = {mark["key"]: mark for mark in chart["marks"]}
    assert set(by_key) == {"spike", "degradation"}
    assert by_key["spike"]["values"][40] == 1 and by_key["spike"]["labels"][40] == "Spike"
    assert all(by_key["degradation"]["values"])


def test_registered_mark_providers_add_their_own_series():
    sensor = SensorFactory()
    fill(sensor, 60, end=END - timedelta(minutes=1))
    calls = []

    def anomalies(*, sensor, start, end):
        calls.append((sensor.pk, start, end))
        return [{"series": "Anomalies", "label": "score 0.97", "start": END - 2 * timedelta(minutes=1), "end": END}]

    selectors.register_chart_marks(anomalies)
    selectors.register_chart_marks(anomalies)  # once only
    chart = sensor_chart(sensor=sensor, start=END - H, end=END)
    assert calls == [(sensor.pk, END - H, END)]
    assert [mark["name"] for mark in chart["marks"]] == ["Anomalies"]
    assert chart["marks"][0]["labels"][-2:] == ["score 0.97", "score 0.97"]


def brute_force_hourly_means(sensor, start, end):
    sums = defaultdict(list)
    for time, value in Reading.objects.filter(sensor=sensor, time__gte=start, time__lt=end).values_list(
        "time", "value"
    ):
        sums[int(bucket_floor(time, H).timestamp())].append(value)
    hours = sorted(sums)
    return {"x": hours, "y": [sum(sums[hour]) / len(sums[hour]) for hour in hours]}


def test_sparklines_are_hourly_means_of_the_last_day_of_signal_in_one_query():
    now = timezone.now()
    online = SensorFactory()
    fill(online, 30 * 60, end=now.replace(second=0, microsecond=0), value=lambda i: float(i % 13))
    offline = SensorFactory()  # went quiet 3 days ago: its sparkline shows its last day
    fill(offline, 40 * 60, end=now - timedelta(days=3), step=timedelta(seconds=30), value=lambda i: i / 7)
    silent = SensorFactory()
    latest = sensor_latest_readings(sensor_pks=[online.pk, offline.pk, silent.pk])
    with CaptureQueriesContext(connection) as queries:
        lines = sensor_sparklines(latest=latest, now=now)
    assert len(queries) == 1
    assert set(lines) == {online.pk, offline.pk}
    for sensor in (online, offline):
        start, end = sparkline_window(latest[sensor.pk], now)
        assert end - start == 24 * H and start == bucket_floor(start, H)
        expected = brute_force_hourly_means(sensor, start, end)
        assert lines[sensor.pk]["x"] == expected["x"]
        assert lines[sensor.pk]["y"] == pytest.approx(expected["y"])
    assert len(lines[online.pk]["x"]) == 24
    offline_end = sparkline_window(latest[offline.pk], now)[1]
    assert offline_end == bucket_floor(latest[offline.pk]["time"], H) + H


def test_attention_lists_active_sensors_most_severe_first():
    now = timezone.now().replace(second=0, microsecond=0)
    calm = SensorFactory(sensor_id="a-calm")
    fill(calm, 3, end=now, value=lambda i: 42.0)
    hot = SensorFactory(sensor_id="b-hot")
    fill(hot, 3, end=now, value=lambda i: 99.0)  # above normal_max 80
    stale = SensorFactory(sensor_id="c-stale")
    fill(stale, 3, end=now - timedelta(minutes=5), value=lambda i: 42.0)  # 5 intervals: stale
    gone = SensorFactory(sensor_id="d-gone")
    fill(gone, 3, end=now - H, value=lambda i: 42.0)
    gone_hot = SensorFactory(sensor_id="e-gone-hot")
    fill(gone_hot, 3, end=now - H, value=lambda i: -5.0)
    resting = SensorFactory(sensor_id="f-resting", status=SensorStatus.MAINTENANCE)
    fill(resting, 3, end=now - H, value=lambda i: 99.0)
    SensorFactory(sensor_id="g-new")  # no data yet: not flagged

    states = fleet_status(sensors=Sensor.objects.all(), now=now)
    result = attention_items(states=states)
    assert [(item["sensor_id"], item["reasons"]) for item in result["items"]] == [
        ("e-gone-hot", ["out_of_range", "offline"]),
        ("b-hot", ["out_of_range"]),
        ("d-gone", ["offline"]),
        ("c-stale", ["stale"]),
    ]
    assert result["total"] == 4 and result["alerts"] is None
    assert result["items"][0]["pk"] == gone_hot.pk and result["items"][0]["asset_name"] == gone_hot.asset.name
    capped = attention_items(states=states, limit=2)
    assert len(capped["items"]) == 2 and capped["total"] == 4
    assert capped["sensor_ids"] == ["e-gone-hot", "b-hot", "d-gone", "c-stale"]


def test_open_alerts_come_first_once_a_provider_is_registered():
    now = timezone.now().replace(second=0, microsecond=0)
    calm = SensorFactory(sensor_id="calm")
    fill(calm, 3, end=now, value=lambda i: 42.0)
    hot = SensorFactory(sensor_id="hot")
    fill(hot, 3, end=now, value=lambda i: 99.0)
    assert not selectors.alerts_enabled()

    @selectors.register_alerts
    def alerts(*, limit):
        return [{"sensor_id": "calm", "title": "Bearing wear", "opened_at": now}][:limit]

    assert selectors.alerts_enabled()
    result = attention_items(states=fleet_status(sensors=Sensor.objects.all(), now=now))
    assert [(item["sensor_id"], item["reasons"]) for item in result["items"]] == [
        ("calm", ["alert"]),
        ("hot", ["out_of_range"]),
    ]
    assert result["alerts"] == [{"sensor_id": "calm", "title": "Bearing wear", "opened_at": now}]


def test_recent_count_counts_the_last_day_and_is_cached():
    now = timezone.now().replace(second=0, microsecond=0)
    one, two = SensorFactory(), SensorFactory()
    fill(one, 100, end=now, step=H / 2)  # 49 within the last 24 h (now - 24 h included)
    fill(two, 10, end=now - timedelta(days=2))
    assert readings_recent_count(now=now) == 49
    fill(two, 5, end=now)
    assert readings_recent_count(now=now) == 49, "cached"
    cache.clear()
    assert readings_recent_count(now=now) == 54


def test_readings_page_walks_a_range_by_keyset_both_ways():
    sensor = SensorFactory()
    times = fill(sensor, 25, end=END)
    start, end = times[2], times[23]  # 21 readings: indexes 2..22
    pages, before = [], None
    while True:
        rows, more = readings_page(sensor=sensor, start=start, end=end, before=before, size=10)
        pages.append([row["time"] for row in rows])
        if not more:
            break
        before = rows[-1]["time"]
    assert pages == [times[22:12:-1], times[12:2:-1], [times[2]]]
    rows, more = readings_page(sensor=sensor, start=start, end=end, after=times[2], size=10)
    assert [row["time"] for row in rows] == times[12:2:-1] and more
    rows, more = readings_page(sensor=sensor, start=start, end=end, after=times[12], size=10)
    assert [row["time"] for row in rows] == times[22:12:-1] and not more

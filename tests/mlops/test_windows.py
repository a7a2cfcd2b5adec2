"""Windows fixed in time, peers of the same type matched by time, look-backs per sensor (mlops.features)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from mlops.features import FEATURES, HISTORY_WINDOWS, Series, build_windows
from mlops.scoring import lookback_starts
from tests.factories import AssetFactory, SensorFactory

T0 = np.datetime64("2026-03-02T00:00:00", "us")
VS_PEERS = FEATURES.index("level_vs_peers")


def series(pk, *, asset, values, interval=60, start=T0, sensor_type="temperature", seed=None):
    values = np.asarray(values, dtype=np.float64)
    if seed is not None:
        values = values + np.random.default_rng(seed).normal(0, 0.5, len(values))
    times = start + np.arange(len(values)) * np.timedelta64(interval, "s")
    return Series(
        sensor_pk=pk,
        sensor_type=sensor_type,
        interval=interval,
        normal_min=0.0,
        normal_max=100.0,
        times=times.astype("datetime64[us]"),
        values=values,
        quality=np.ones(len(values)),
        asset_pk=asset,
    )


def rows_of(windows, pk):
    return windows.X[windows.sensor_pk == pk], windows.slot_start[windows.sensor_pk == pk]


def test_peers_are_the_other_sensors_of_the_same_type_never_sensors_of_other_types():
    a = series(1, asset=1, values=np.full(1200, 50.0), seed=1)
    b = series(2, asset=2, values=np.full(1200, 50.0), seed=2)
    # Another type on the same machine, whose level moves: its unit is not A's, so it must not move A's features.
    c = series(3, asset=1, values=np.r_[np.full(600, 50.0), np.full(600, 85.0)], seed=3, sensor_type="vibration")
    with_other_type, _ = rows_of(build_windows([a, b, c], window=10), 1)
    alone, _ = rows_of(build_windows([a, b], window=10), 1)
    assert np.array_equal(with_other_type, alone)
    without_peer, _ = rows_of(build_windows([a, c], window=10), 1)
    assert not np.array_equal(without_peer[:, VS_PEERS], alone[:, VS_PEERS])


def test_peers_are_matched_by_time_when_they_sample_at_another_rate():
    # A samples every minute (10-minute windows), its peer B every 2 minutes (20-minute windows); B's level
    # rises at 10:00. A's windows must see it from the first B window after 10:00, at that time, not at the
    # window of the same number (which for B is twice as late).
    a = series(1, asset=1, values=np.full(24 * 60, 50.0))
    b = series(2, asset=1, values=np.r_[np.full(300, 50.0), np.full(420, 80.0)], interval=120)
    X, starts = rows_of(build_windows([a, b], window=10), 1)
    vs_peers = dict(zip(starts.astype("datetime64[m]").astype(str), X[:, VS_PEERS], strict=True))
    assert vs_peers["2026-03-02T09:50"] == 0.0  # ends at 10:00: B's window 09:40-10:00 is still level
    assert vs_peers["2026-03-02T10:00"] == 0.0  # ends at 10:10: B's latest complete window is the same
    assert vs_peers["2026-03-02T10:10"] == pytest.approx(-0.3)  # ends at 10:20: B's 10:00-10:20 window is up
    assert vs_peers["2026-03-02T10:30"] == pytest.approx(-0.3)


def test_a_window_has_the_same_features_whatever_range_is_read():
    """The ground of cadence invariance: a window's features need only its last HISTORY_WINDOWS slots."""
    rng = np.random.default_rng(7)
    a = series(1, asset=1, values=50 + np.cumsum(rng.normal(0, 0.3, 3000)))
    b = series(2, asset=1, values=50 + np.cumsum(rng.normal(0, 0.3, 3000)), interval=60)
    # A gap of 3 hours in A: the baseline is the previous slots by time, not the previous 30 windows.
    keep = (np.arange(3000) < 1000) | (np.arange(3000) >= 1180)
    a = Series(**{**a.__dict__, "times": a.times[keep], "values": a.values[keep], "quality": a.quality[keep]})
    full = build_windows([a, b], window=10)
    for first in (T0 + np.timedelta64(900, "m"), T0 + np.timedelta64(1200, "m"), T0 + np.timedelta64(2500, "m")):
        cut = first - np.timedelta64(10 * (HISTORY_WINDOWS + 1), "m")
        part = build_windows([_cut(s, cut) for s in (a, b)], window=10)
        wanted_full = full.slot_start >= first
        wanted_part = part.slot_start >= first
        assert wanted_full.sum() == wanted_part.sum() > 0
        assert np.array_equal(full.sensor_pk[wanted_full], part.sensor_pk[wanted_part])
        assert np.array_equal(full.X[wanted_full], part.X[wanted_part])


def _cut(item: Series, start) -> Series:
    keep = item.times >= start
    return Series(
        **{**item.__dict__, "times": item.times[keep], "values": item.values[keep], "quality": item.quality[keep]}
    )


def test_windows_are_fixed_in_time_not_to_the_start_of_the_range():
    a = series(1, asset=1, values=np.full(100, 50.0), start=T0 + np.timedelta64(7, "m"))
    windows = build_windows([a], window=10)
    # Readings from 00:07: the first window is 00:00-00:10 (three readings: too few to score), then 00:10...
    assert str(windows.slot_start[0].astype("datetime64[m]")) == "2026-03-02T00:10"
    assert np.all(windows.slot_start.astype(np.int64) % (600 * 1_000_000) == 0)


@pytest.mark.django_db
def test_each_sensor_reads_back_as_far_as_its_own_sampling_interval_needs():
    line, remote = AssetFactory(), AssetFactory()
    minutely = SensorFactory(asset=line, sensor_type="temperature", sampling_interval=60)
    neighbour = SensorFactory(asset=line, sensor_type="vibration", sampling_interval=60)
    hourly = SensorFactory(asset=remote, sensor_type="temperature", sampling_interval=3600)
    since = datetime.fromtimestamp(432_000 * 4100, UTC)  # a boundary of 10-minute and of 10-hour windows alike
    everyone, starts = lookback_starts(
        sensors=[minutely, hourly], since={minutely.pk: since, hourly.pk: since}, window=10
    )
    # Peers are the other sensors of the same type, wherever they are; another type beside them is not one.
    assert {sensor.pk for sensor in everyone} == {minutely.pk, hourly.pk}
    assert neighbour.pk not in starts
    # HISTORY_WINDOWS + 1 windows of each sensor's own length: 10 minutes, not the hourly sensor's 10 hours.
    assert starts[minutely.pk] == since - timedelta(minutes=10 * (HISTORY_WINDOWS + 1))
    assert starts[hourly.pk] == since - timedelta(hours=10 * (HISTORY_WINDOWS + 1))

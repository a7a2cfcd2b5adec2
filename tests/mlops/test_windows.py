"""Windows fixed in time, peers of the same type matched by time, look-backs per sensor (mlops.features)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from mlops.features import FEATURES, HISTORY_WINDOWS, Series, build_windows
from mlops.scoring import lookback_starts
from mlops.selectors import sensor_peer_groups
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


def test_peers_are_the_sensors_of_the_same_type_in_the_same_peer_group():
    # A and B on one site, C of the same type on another: C's level rising must not move A's features.
    a = series(1, asset=1, values=np.full(1200, 50.0), seed=1)
    b = series(2, asset=2, values=np.full(1200, 50.0), seed=2)
    c = series(3, asset=3, values=np.r_[np.full(600, 50.0), np.full(600, 85.0)], seed=3)
    a.peer_group = b.peer_group = "site='North Plant'"
    c.peer_group = "site='South Works'"
    with_c, _ = rows_of(build_windows([a, b, c], window=10), 1)
    alone, _ = rows_of(build_windows([a, b], window=10), 1)
    assert np.array_equal(with_c, alone)
    # A sensor without a group (alone of its type in its own) has every sensor of its type as peer.
    c.peer_group = None
    lone, _ = rows_of(build_windows([a, b, c], window=10), 3)
    lone_without_b, _ = rows_of(build_windows([a, c], window=10), 3)
    assert not np.array_equal(lone[:, VS_PEERS], lone_without_b[:, VS_PEERS])


@pytest.mark.django_db
def test_peer_groups_are_the_site_and_the_machine_model_and_scoring_reads_only_them():
    north, north_too, south = AssetFactory(site="North"), AssetFactory(site="North"), AssetFactory(site="South")
    pump_a = AssetFactory(site="East", metadata={"model": "P-200"})
    pump_b = AssetFactory(site="East", metadata={"model": "P-200"})
    other_model = AssetFactory(site="East", metadata={"model": "P-300"})
    unnamed = AssetFactory(site="East")
    one = SensorFactory(asset=north, sensor_type="temperature")
    two = SensorFactory(asset=north_too, sensor_type="temperature")
    far = SensorFactory(asset=south, sensor_type="temperature")  # alone of its type on its site
    vibration = SensorFactory(asset=north, sensor_type="vibration")
    p_a = SensorFactory(asset=pump_a, sensor_type="temperature")
    p_b = SensorFactory(asset=pump_b, sensor_type="temperature")
    p_other = SensorFactory(asset=other_model, sensor_type="temperature")
    p_unnamed = SensorFactory(asset=unnamed, sensor_type="temperature")
    groups = sensor_peer_groups([one, two, far, vibration, p_a, p_b, p_other, p_unnamed])
    assert groups[one.pk] == groups[two.pk] == "site='North'"
    assert groups[p_a.pk] == groups[p_b.pk] == "site='East' model='P-200'"
    # Alone in their group: every sensor of the type is a peer.
    assert groups[far.pk] is groups[vibration.pk] is groups[p_other.pk] is groups[p_unnamed.pk] is None

    since = datetime.fromtimestamp(432_000 * 4100, UTC)
    everyone, _ = lookback_starts(sensors=[one], since={one.pk: since}, window=10)
    assert {sensor.pk for sensor in everyone} == {one.pk, two.pk}
    everyone, _ = lookback_starts(sensors=[p_a], since={p_a.pk: since}, window=10)
    assert {sensor.pk for sensor in everyone} == {p_a.pk, p_b.pk}
    everyone, _ = lookback_starts(sensors=[far], since={far.pk: since}, window=10)
    assert {sensor.pk for sensor in everyone} == {one.pk, two.pk, far.pk, p_a.pk, p_b.pk, p_other.pk, p_unnamed.pk}

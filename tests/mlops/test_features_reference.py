"""The vectorised features (mlops.features) against a plain computation, window by window and peer by peer.

The reference below is written for reading, not speed: one loop per sensor, per window and per peer, numpy only
on one window's readings at a time. The two must agree bit for bit on random series with gaps, coarse values
(repeats), flagged readings, sensors without a normal range, peers sampling at other rates, and peer groups (a
sensor in a group has the sensors of its type in that group as peers; one without, every sensor of its type).
"""

import bisect
import warnings

import numpy as np
import pytest

from mlops.features import BASELINE_WINDOWS, EPOCH, FEATURES, Series, build_windows, slot_of, span_of

T0 = np.datetime64("2026-03-02T00:00:00", "us")


def reference_windows(series: list[Series], window: int) -> dict[tuple[int, int], dict]:
    """{(sensor_pk, slot): features and times} of every window with at least max(2, window // 2) readings."""
    found = {}
    own = {}  # sensor_pk -> its windows in time order
    for item in series:
        span = span_of(item.interval, window)
        slots = slot_of(item.times, span)
        rows = []
        for slot in sorted(set(slots.tolist())):
            chosen = slots == slot
            if chosen.sum() < max(2, window // 2):
                continue
            raw = item.values[chosen]
            v = raw / item.width
            q = item.quality[chosen]
            steps = np.diff(v)
            x = np.arange(len(v)) - (len(v) - 1) / 2
            low = -np.inf if item.normal_min is None else item.normal_min
            high = np.inf if item.normal_max is None else item.normal_max
            rows.append(
                {
                    "slot": slot,
                    "end_time": EPOCH + span * (slot + 1),
                    "span": span,
                    "start": item.times[chosen][0],
                    "end": item.times[chosen][-1],
                    "mean": v.mean(),
                    "std": v.std(),
                    "slope": (v * x).sum() / (x * x).sum() * len(v),
                    "jump": np.abs(steps).max(),
                    "flat_share": (steps == 0).mean(),
                    "flagged_share": (q < 1).mean(),
                    "min_quality": q.min(),
                    "out_of_range_share": ((raw < low) | (raw > high)).mean(),
                }
            )
        for i, row in enumerate(rows):
            baseline = [r for r in rows[:i] if r["slot"] >= row["slot"] - BASELINE_WINDOWS]

            def usual(name, baseline=baseline, row=row):
                values = [r[name] for r in baseline] or [row[name]]
                return _median(values)

            row["level"] = row["mean"] - usual("mean")
            row["change"] = row["mean"] - rows[i - 1]["mean"] if baseline else 0.0
            row["log_spread_ratio"] = np.log((row["std"] + 1e-6) / (usual("std") + 1e-6))
            row["jump_ratio"] = row["jump"] / (usual("jump") + 1e-6)
            row["flat_excess"] = row["flat_share"] - usual("flat_share")
        for i, row in enumerate(rows):  # against the levels and changes of the baseline windows, computed above
            baseline = [r for r in rows[:i] if r["slot"] >= row["slot"] - BASELINE_WINDOWS]
            row["level_z"] = row["level"] / (_median([abs(r["level"]) for r in baseline] or [abs(row["level"])]) + 1e-3)
            row["change_z"] = row["change"] / (
                _median([abs(r["change"]) for r in baseline] or [abs(row["change"])]) + 1e-3
            )
        own[item.sensor_pk] = rows
    for item in series:
        for row in own[item.sensor_pk]:
            levels, changes = [], []
            for peer in series:
                if peer.sensor_pk == item.sensor_pk or peer.sensor_type != item.sensor_type:
                    continue
                if item.peer_group is not None and peer.peer_group != item.peer_group:
                    continue  # a sensor with a group has the sensors of its type in it; one without, all of them
                # The peer's latest window ending by this one's end, if it ends less than a (longer) span before.
                theirs = own[peer.sensor_pk]
                latest = bisect.bisect_right([r["end_time"] for r in theirs], row["end_time"]) - 1
                if latest >= 0 and theirs[latest]["end_time"] > row["end_time"] - max(
                    row["span"], theirs[latest]["span"]
                ):
                    levels.append(theirs[latest]["level"])
                    changes.append(theirs[latest]["change"])
            row["level_vs_peers"] = row["level"] - (_median(levels) if levels else 0.0)
            row["change_vs_peers"] = row["change"] - (_median(changes) if changes else 0.0)
            found[(item.sensor_pk, row["slot"])] = row
    return found


def _median(values):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.median(np.array(values, dtype=np.float64))


def random_fleet(
    seed: int, *, sensors: int = 9, readings: int = 1500, intervals=(60,), groups: bool = False
) -> list[Series]:
    rng = np.random.default_rng(seed)
    fleet = []
    for pk in range(1, sensors + 1):
        interval = int(rng.choice(intervals))
        start = T0 + np.timedelta64(int(rng.integers(0, 5 * 3600)), "s")
        times = start + np.arange(readings) * np.timedelta64(interval, "s")
        values = np.round(50 + np.cumsum(rng.normal(0, 0.3, readings)), int(rng.integers(0, 3)))  # repeats too
        values[rng.integers(0, readings, 5)] = 140.0  # out of range
        quality = np.where(rng.random(readings) < 0.05, 0.5, 1.0)
        keep = rng.random(readings) > 0.1  # readings missing here and there (some windows too thin to score)...
        for _ in range(3):  # ...and gaps of up to hours
            first = int(rng.integers(0, readings))
            keep[first : first + int(rng.integers(5, 400))] = False
        ranged = rng.random() > 0.25
        fleet.append(
            Series(
                sensor_pk=pk,
                sensor_type=str(rng.choice(["temperature", "vibration"])),
                interval=interval,
                normal_min=0.0 if ranged else None,
                normal_max=float(rng.choice([60.0, 100.0])) if ranged else None,
                times=times[keep],
                values=values[keep],
                quality=quality[keep],
                asset_pk=int(rng.integers(1, 4)),
                peer_group=[None, "site='North'", "site='South' model='P-200'"][int(rng.integers(0, 3))]
                if groups
                else None,
            )
        )
    return fleet


@pytest.mark.parametrize(
    ("seed", "intervals", "window", "groups"),
    [
        (1, (60,), 10, False),
        (2, (60,), 10, True),
        (3, (30, 60, 120), 10, False),
        (4, (60, 3600), 10, True),
        (5, (1, 2), 6, True),
        (6, (60,), 3, False),
        (8, (60, 120), 10, True),
    ],
)
def test_vectorised_features_equal_a_window_by_window_computation(seed, intervals, window, groups):
    fleet = random_fleet(seed, sensors=12 if groups else 9, intervals=intervals, groups=groups)
    windows = build_windows(fleet, window=window)
    expected = reference_windows(fleet, window)
    assert len(windows) == len(expected) > 100
    for i, (pk, slot) in enumerate(zip(windows.sensor_pk.tolist(), windows.slot.tolist(), strict=True)):
        row = expected[(pk, slot)]
        assert windows.start[i] == row["start"] and windows.end[i] == row["end"]
        assert windows.slot_start[i] == row["end_time"] - row["span"]
        got = dict(zip(FEATURES, windows.X[i].tolist(), strict=True))
        want = {name: float(row[name]) for name in FEATURES}
        assert got == want, (pk, slot, {name: (got[name], want[name]) for name in FEATURES if got[name] != want[name]})
    # In the order of the series given, then time.
    order = [(pk, slot) for pk, slot in sorted(expected, key=lambda key: (key[0], key[1]))]
    assert list(zip(windows.sensor_pk.tolist(), windows.slot.tolist(), strict=True)) == order


@pytest.mark.parametrize(
    ("seed", "intervals", "window", "groups"),
    [(2, (60,), 10, True), (3, (30, 60, 120), 10, False), (4, (60, 3600), 10, True), (5, (1, 2), 6, True)],
)
def test_windows_asked_from_a_slot_on_get_the_very_features_of_all_windows(seed, intervals, window, groups):
    """What a scheduled run asks (build_windows ``since``): some sensors' windows from a slot on, the rest history."""
    fleet = random_fleet(seed, sensors=12 if groups else 9, intervals=intervals, groups=groups)
    full = build_windows(fleet, window=window)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        since = {}
        for item in fleet[: len(fleet) // 2 + int(rng.integers(0, len(fleet) // 2))]:
            slots = full.slot[full.sensor_pk == item.sensor_pk]
            if len(slots):  # from a late window of the sensor (the newest, in a scheduled run) or an earlier one
                since[item.sensor_pk] = int(slots[-int(rng.integers(1, min(len(slots), 80) + 1))])
        part = build_windows(fleet, window=window, since=since)
        expected = np.array([full.slot[i] >= since.get(int(pk), 1 << 62) for i, pk in enumerate(full.sensor_pk)])
        assert 0 < len(part) == int(expected.sum()) < len(full)
        assert np.array_equal(part.sensor_pk, full.sensor_pk[expected])
        assert np.array_equal(part.slot, full.slot[expected])
        assert np.array_equal(part.slot_start, full.slot_start[expected])
        assert np.array_equal(part.start, full.start[expected]) and np.array_equal(part.end, full.end[expected])
        assert np.array_equal(part.X, full.X[expected])  # bit for bit, NaN nowhere
    assert len(build_windows(fleet, window=window, since={})) == 0


def test_no_series_and_series_without_windows():
    assert len(build_windows([], window=10)) == 0
    fleet = random_fleet(7, sensors=2)
    first = fleet[0]
    thin = Series(
        **{**first.__dict__, "times": first.times[:3], "values": first.values[:3], "quality": first.quality[:3]}
    )
    windows = build_windows([thin], window=10)
    assert len(windows) == 0 and windows.X.shape == (0, len(FEATURES))

"""The normal-behaviour model (mlops/normal.py) on synthetic arrays: what it flags, what it leaves alone, and why.

One asset, readings a minute apart, 10-minute windows, a two-week baseline, then each fault shape the issue lists
laid on one sensor of a third week. The sensors: a temperature with a smooth daily swing, a motor current that
steps with the shifts (rounded to 0.01 A), and a flow and a pressure that wander together (the pump's load).
"""

import json

import numpy as np
import pytest

from mlops.features import Series
from mlops.normal import MEMORY_WINDOWS, AssetModel, asset_frame

T0 = np.datetime64("2026-03-02T00:00:00", "us")  # a Monday
MINUTE = np.timedelta64(60, "s")
DAY = 1440
BASELINE_DAYS = 14
RATE = 1e-4  # the product's default false-alarm rate per window
SENSORS = ("temperature", "current", "flow", "pressure")
LSB = {"current": 0.01}


def fleet_week(seed: int = 0, days: int = BASELINE_DAYS + 7) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    minutes = np.arange(days * DAY)
    angle = 2 * np.pi * minutes / DAY
    load = np.zeros(len(minutes))  # the pump's load: a slow wander (about 8 h memory) shared by flow and pressure
    steps = rng.normal(0, 0.02, len(minutes))
    for k in range(1, len(minutes)):
        load[k] = 0.998 * load[k - 1] + steps[k]
    values = {
        "temperature": 50 + 5 * np.sin(angle - 1) + rng.normal(0, 0.3, len(minutes)),
        "current": np.round(30 + 3 * np.sign(np.sin(angle)) + rng.normal(0, 1.0, len(minutes)), 2),
        "flow": 100 + 10 * load + rng.normal(0, 1.0, len(minutes)),
        "pressure": 5 + 0.5 * load + rng.normal(0, 0.025, len(minutes)),
    }
    return T0 + minutes * MINUTE, values


def frame(times, values, start=0, end=None):
    chosen = slice(start, end)
    series = [
        Series(i, name, 60, None, None, times[chosen], values[name][chosen], np.ones(len(times[chosen])))
        for i, name in enumerate(SENSORS)
    ]
    return asset_frame(series, list(SENSORS), window=10)


def fitted(times, values):
    return AssetModel.fit(frame(times, values, 0, BASELINE_DAYS * DAY), false_alarm_rate=RATE, resolution=LSB)


ONSET = BASELINE_DAYS * DAY + 2 * DAY + 10 * 60  # 10:00 on the third day after the baseline
LENGTH = 180  # three hours


def scored(values, times, model):
    """Scores of the week after the baseline (with the model's memory of history before it)."""
    test = frame(times, values, BASELINE_DAYS * DAY - (MEMORY_WINDOWS + 1) * 10)
    return test, model.score(test)


def first_flag(test, scores, sensor: str, start: int = ONSET, length: int = LENGTH, times=None):
    """(minutes from the onset to the end of the first flagged window of ``sensor``, its row) over the fault."""
    column = SENSORS.index(sensor)
    onset, end = times[start], times[start + length - 1]
    during = (test.slot_end > onset) & (test.slot_start <= end)
    rows = np.flatnonzero(during & (scores.own_ratio[:, column] >= 1))
    if not len(rows):
        return None, None
    return (test.slot_end[rows[0]] - onset) / MINUTE, rows[0]


@pytest.fixture(scope="module")
def week():
    times, values = fleet_week()
    return times, values, fitted(times, values)


def test_a_clean_week_with_a_daily_pattern_raises_at_most_one_window_per_sensor(week):
    times, values, model = week
    test, scores = scored(values, times, model)
    after = test.slot_start >= times[BASELINE_DAYS * DAY]
    assert (scores.sensor_ratio[after] >= 1).sum(axis=0).max() <= 1
    assert (scores.ratio[after] >= 1).sum() <= 1
    # The temperature's daily swing is learned (linear between the hours), the current's shifts as hourly steps.
    profiles = model.params["profiles"]
    assert profiles[0]["linear"] is True and profiles[4]["linear"] is False


def test_a_step_inside_the_range_is_a_level_shift_flagged_at_once_on_its_sensor(week):
    times, values, model = week
    faulty = {**values, "current": values["current"].copy()}
    faulty["current"][ONSET : ONSET + LENGTH] += 2.5  # inside the range: the shifts swing it by 6 A
    test, scores = scored(faulty, times, model)
    minutes, row = first_flag(test, scores, "current", times=times)
    assert minutes is not None and minutes <= 20
    why = model.explain(scores, row)
    assert (why[0]["sensor"], why[0]["feature"]) == ("current", "level") and why[0]["z"] > 0
    before = test.slot_end <= times[ONSET]
    assert not (scores.sensor_ratio[before] >= 1).any()


def test_a_drift_inside_the_range_is_flagged_before_it_crosses_the_range(week):
    times, values, model = week
    faulty = {**values, "temperature": values["temperature"].copy()}
    start = BASELINE_DAYS * DAY + 2 * DAY + 2 * 60  # at 02:00, near the daily low
    highest = values["temperature"][: BASELINE_DAYS * DAY].max()
    ramp = np.arange(6 * 60) * (highest - values["temperature"][start : start + 6 * 60].max()) / (4 * 60)
    faulty["temperature"][start : start + 6 * 60] += np.clip(ramp, 0, None)
    crossing = start + int(np.flatnonzero(faulty["temperature"][start:] > highest)[0])
    assert crossing - start >= 3 * 60  # it stays inside the baseline's range for hours
    test, scores = scored(faulty, times, model)
    minutes, row = first_flag(test, scores, "temperature", start=start, length=6 * 60, times=times)
    assert minutes is not None and times[start] + minutes * MINUTE < times[crossing]
    why = model.explain(scores, row)
    assert why[0]["sensor"] == "temperature" and why[0]["feature"] in ("drift", "level") and why[0]["z"] > 0


def test_a_frozen_value_with_one_lsb_of_dither_is_flat_readings(week):
    times, values, model = week
    rng = np.random.default_rng(1)
    faulty = {**values, "current": values["current"].copy()}
    held = faulty["current"][ONSET - 1]
    faulty["current"][ONSET : ONSET + LENGTH] = np.round(held + 0.01 * rng.integers(-1, 2, LENGTH), 2)
    test, scores = scored(faulty, times, model)
    minutes, row = first_flag(test, scores, "current", times=times)
    assert minutes is not None and minutes <= 30
    why = model.explain(scores, row)
    assert (why[0]["sensor"], why[0]["feature"]) == ("current", "repeats")


def test_an_exact_flatline_is_flagged_and_its_end_raises_nothing(week):
    times, values, model = week
    faulty = {**values, "temperature": values["temperature"].copy()}
    faulty["temperature"][ONSET : ONSET + LENGTH] = np.median(values["temperature"][ONSET - 60 : ONSET])
    test, scores = scored(faulty, times, model)
    minutes, row = first_flag(test, scores, "temperature", times=times)
    assert minutes is not None and minutes <= 30
    assert model.explain(scores, row)[0]["sensor"] == "temperature"
    after = test.slot_start >= times[ONSET + LENGTH]
    assert not (scores.sensor_ratio[after] >= 1).any()


@pytest.mark.parametrize("tail", [2, 5, 8])
def test_the_window_a_flagged_flatline_ends_in_is_its_return_not_a_departure(week, tail):
    # The holdout's flatline: the value held while the sensor's daily swing moved on, then back part-way through a
    # window. That window holds the last `tail` held readings and the step back to the sensor's level (spread,
    # peak-to-peak, repeated readings, a mean between the two): the run's return, not a new departure.
    times, values, model = week
    faulty = {**values, "temperature": values["temperature"].copy()}
    start = BASELINE_DAYS * DAY + 2 * DAY + 2 * 60  # 02:00, as the swing rises fastest
    end = start + LENGTH + tail  # the last held reading is the window's `tail`-th
    faulty["temperature"][start:end] = np.median(values["temperature"][start - 60 : start])
    assert abs(values["temperature"][end : end + 10].mean() - faulty["temperature"][end - 1]) > 2  # a step back
    test, scores = scored(faulty, times, model)
    minutes, _ = first_flag(test, scores, "temperature", start=start, length=LENGTH + tail, times=times)
    assert minutes is not None and minutes <= 30
    column = SENSORS.index("temperature")
    last = int(np.flatnonzero(test.slot_start <= times[end - 1])[-1])  # the window the flatline ends in
    assert scores.flat[last - 1, column] and scores.own_ratio[last - 1, column] >= 1  # flagged to its end
    assert test.slot_end[last] > times[end]  # the return holds readings after the flatline
    after = test.slot_end > times[end - 1]
    assert not (scores.sensor_ratio[after] >= 1).any(), np.flatnonzero(after & (scores.ratio >= 1))
    assert not (scores.ratio[after] >= 1).any()
    assert not scores.flat[after].any()
    # The same within the model's memory alone, as a scheduled run scores it.
    stop = int(np.searchsorted(times, test.slot_end[last]))
    alone = model.score(frame(times, faulty, stop - (MEMORY_WINDOWS + 1) * 10, stop))
    assert alone.ratio[-1] == pytest.approx(scores.ratio[last])
    assert np.allclose(alone.contributions[-1], scores.contributions[last])


def test_a_sensor_still_away_from_normal_and_flat_now_and_then_is_flagged_in_every_window(week):
    # SKAB's valve1/7: a closed valve's flow far below normal, at a few counts, a window in three flat. The window
    # after a flat one is not a return while the level test holds the departure: each is flagged as before.
    times, values, model = week
    faulty = {**values, "flow": values["flow"].copy()}
    faulty["flow"][ONSET : ONSET + LENGTH] -= 30
    for first in range(ONSET, ONSET + LENGTH, 30):
        faulty["flow"][first : first + 10] = faulty["flow"][first]
    test, scores = scored(faulty, times, model)
    column = SENSORS.index("flow")
    during = (test.slot_start >= times[ONSET]) & (test.slot_end <= times[ONSET + LENGTH - 1])
    assert scores.flat[during, column].any()
    assert (scores.sensor_ratio[during, column] >= 1).all()


@pytest.mark.parametrize("frozen", [3, 5, 7])
def test_a_value_frozen_part_way_through_a_window_is_flagged_in_that_window(week, frozen):
    # The temperature (fine resolution) never repeats a reading in its baseline: its last `frozen` readings of a
    # window equal to one another are found in that window, not once a whole window is flat.
    times, values, model = week
    assert model.params["flat"][0]["pairs"] == 2  # two repeated readings (three equal in a row) are a departure
    faulty = {**values, "temperature": values["temperature"].copy()}
    first = ONSET + 10 - frozen  # ONSET starts a window: the frozen readings end the window before the next
    faulty["temperature"][first : ONSET + LENGTH] = faulty["temperature"][first]
    test, scores = scored(faulty, times, model)
    minutes, row = first_flag(test, scores, "temperature", start=first, times=times)
    assert minutes == frozen
    why = model.explain(scores, row)
    assert (why[0]["sensor"], why[0]["feature"]) == ("temperature", "repeats")
    # The current (0.01 A steps) repeats readings in its baseline now and then: a test only beyond what it showed.
    assert model.params["flat"][1]["pairs"] >= 2


def test_noise_growing_with_the_same_mean_is_noise(week):
    times, values, model = week
    rng = np.random.default_rng(2)
    faulty = {**values, "flow": values["flow"].copy()}
    faulty["flow"][ONSET : ONSET + LENGTH] += rng.normal(0, 1.0, LENGTH) * np.linspace(0, 6, LENGTH)
    test, scores = scored(faulty, times, model)
    minutes, row = first_flag(test, scores, "flow", times=times)
    assert minutes is not None
    why = model.explain(scores, row)
    assert why[0]["sensor"] == "flow" and why[0]["feature"] in ("spread", "range") and why[0]["z"] > 0


def test_a_new_oscillation_and_intermittent_spikes_are_flagged(week):
    times, values, model = week
    faulty = {**values, "current": values["current"].copy(), "temperature": values["temperature"].copy()}
    faulty["current"][ONSET : ONSET + LENGTH] += 3.0 * np.sin(2 * np.pi * np.arange(LENGTH) / 15)
    rng = np.random.default_rng(3)
    spikes = np.arange(ONSET, ONSET + LENGTH, 13)
    faulty["temperature"][spikes] += rng.choice([-1, 1], len(spikes)) * 3.5
    test, scores = scored(faulty, times, model)
    for sensor, features in (("current", ("spread", "range", "level")), ("temperature", ("range", "spread"))):
        minutes, row = first_flag(test, scores, sensor, times=times)
        assert minutes is not None, sensor
        assert model.explain(scores, row)[0]["feature"] in features


def test_a_broken_relation_is_caught_by_the_asset_while_each_sensor_stays_in_its_band(week):
    times, values, model = week
    # The pressure stops following the pump's load as it did: it sways by 1.5 of its own standard deviations
    # over four hours while the flow does not (an impulse line clogging, a sensor drifting against its twin),
    # each sensor well inside what it did alone.
    faulty = {**values, "pressure": values["pressure"].copy()}
    span = np.arange(ONSET, ONSET + 6 * 60)
    sway = 1.5 * values["pressure"][: BASELINE_DAYS * DAY].std() * np.sin(2 * np.pi * (span - ONSET) / (4 * 60))
    faulty["pressure"][span] += sway
    test, scores = scored(faulty, times, model)
    # Where the sway is widest (an hour, three and five hours in), the asset's T² or Q is over its threshold.
    widest = [
        int(np.searchsorted(test.slot_start, times[ONSET + minute], side="right")) - 1 for minute in (60, 180, 300)
    ]
    assert (scores.asset_ratio[widest] >= 1).all()
    during = (test.slot_end > times[ONSET]) & (test.slot_start <= times[ONSET + 6 * 60 - 1])
    assert (scores.own_ratio[during] < 1).all()
    assert not (scores.asset_ratio[test.slot_end <= times[ONSET]] >= 1).any()
    # Shared out to the sensors by their z-scores: the flow or the pressure carries it, as the product shows it.
    shares = scores.sensor_ratio[widest][:, [SENSORS.index("flow"), SENSORS.index("pressure")]]
    assert (shares.max(axis=1) >= 1).all()


def test_parameters_are_plain_json_and_score_the_same_after_a_round_trip(week):
    times, values, model = week
    again = AssetModel(json.loads(json.dumps(model.params)))
    test = frame(times, values, BASELINE_DAYS * DAY, BASELINE_DAYS * DAY + DAY)
    first, second = model.score(test), again.score(test)
    assert np.array_equal(first.ratio, second.ratio)
    assert np.array_equal(first.contributions, second.contributions)
    with pytest.raises(ValueError, match="older version"):
        AssetModel({"sensors": list(SENSORS)})


def test_a_window_depends_only_on_its_memory(week):
    times, values, model = week
    faulty = {**values, "current": values["current"].copy()}
    faulty["current"][ONSET : ONSET + LENGTH] += 2.5
    whole, scores = scored(faulty, times, model)
    for row in np.flatnonzero(whole.slot_start >= times[ONSET])[:30:3]:
        end = int(np.searchsorted(times, whole.slot_end[row]))
        recent = frame(times, faulty, end - (MEMORY_WINDOWS + 1) * 10, end)
        alone = model.score(recent)
        assert alone.ratio[-1] == pytest.approx(scores.ratio[row])
        assert np.allclose(alone.contributions[-1], scores.contributions[row])


def test_assets_scored_together_score_as_each_alone(week, monkeypatch):
    # A scoring run scores its assets' frames side by side (score_assets): frames of other ranges, other models,
    # gaps and an empty one must not change any asset's scores, nor must splitting them into batches.
    from mlops import normal
    from mlops.normal import score_assets

    times, values, model = week
    other = fitted(*fleet_week(seed=3))
    faulty = {**values, "flow": values["flow"].copy(), "current": values["current"].copy()}
    faulty["flow"][ONSET : ONSET + LENGTH] -= 30
    faulty["current"][ONSET - 600 : ONSET] = faulty["current"][ONSET - 600]  # a flatline
    gappy = {name: column.copy() for name, column in faulty.items()}
    keep = np.ones(len(times), bool)
    keep[ONSET - 200 : ONSET - 50] = False  # the whole asset silent for 150 minutes
    gappy_frame = frame(times[keep], {name: column[keep] for name, column in gappy.items()}, ONSET - 2000)
    frames = [
        frame(times, faulty, ONSET - 1000, ONSET + 400),
        frame(times, values, ONSET - 3000, ONSET - 1500),  # an earlier range, not overlapping
        gappy_frame,
        frame(times, faulty, ONSET, ONSET + 3),  # too few readings for a window: no rows
    ]
    models = [model, other, model, other]
    alone = [model.score(item) for model, item in zip(models, frames, strict=True)]
    assert len(frames[3]) == 0 and len(alone[3].ratio) == 0 and (alone[0].ratio >= 1).any()
    for cells in (normal.BATCH_CELLS, 1):  # together, then one batch per asset
        monkeypatch.setattr(normal, "BATCH_CELLS", cells)
        together = score_assets(models, frames)
        for one, both in zip(alone, together, strict=True):
            for name in ("ratio", "sensor_ratio", "contributions", "asset_ratio", "own_ratio", "deviations"):
                assert np.array_equal(getattr(one, name), getattr(both, name)), name


def test_a_short_baseline_of_a_slow_signal_widens_its_band_not_its_moves():
    # Seven minutes of a thermocouple creeping up as water warms (SKAB's baselines): its level soon leaves what the
    # baseline saw, at the pace the baseline saw; then a jump of ten baseline moves.
    rng = np.random.default_rng(4)
    seconds = np.arange(1200)
    level = 25 + 0.0004 * seconds + np.cumsum(rng.normal(0, 0.002, len(seconds))) + rng.normal(0, 0.003, len(seconds))
    level[900:] += 0.5
    times = T0 + seconds * np.timedelta64(1, "s")

    def one(end):
        series = Series(0, "thermocouple", 1, None, None, times[:end], level[:end], np.ones(end))
        return asset_frame([series], ["thermocouple"], window=10)

    model = AssetModel.fit(one(400), false_alarm_rate=RATE)
    whole = one(len(times))
    scores = model.score(whole)
    creeping = (whole.slot_start >= times[400]) & (whole.slot_end <= times[900])
    jumped = whole.slot_start >= times[900]
    assert not (scores.ratio[creeping] >= 1).any()
    assert (scores.ratio[jumped] >= 1).mean() > 0.8
    assert model.params["long_scales"][0] > 2 * model.params["scales"][0]

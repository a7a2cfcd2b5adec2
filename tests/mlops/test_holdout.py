"""Holdout fault shapes (readings/holdout.py): each shape has the properties it claims, the service appends them
through the product without labelling them, and the normal-behaviour model flags every shape on a small fleet
(bench/holdout.py's path)."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from readings.choices import HoldoutShape
from readings.holdout import (
    DRIFT_INSIDE,
    DRIFT_PAST,
    OSCILLATION_PERIOD,
    SHAPE_LENGTHS,
    SPIKE_GAPS,
    lay_shape,
    noise_sigma,
    quantize,
    replay,
    resolution,
)
from readings.models import FaultLabel, Reading
from readings.services import HOLDOUT_MARK, readings_holdout_append
from readings.synthetic import PROFILES, SensorSignal, SignalParams
from sensors.models import Sensor

DAY = np.timedelta64(86_400, "s")
MINUTE = np.timedelta64(60, "s")
FIRST = 300  # the onset, in readings after the last recorded one


def _base(sensor_type: str, *, days: int = 7):
    """A sensor's recent week (synthetic, no faults) and the next day replayed from it: (base, profile, history)."""
    profile = PROFILES[sensor_type]
    params = SignalParams(3, sensor_type, 2, profile.normal_min, profile.normal_max)
    signal = SensorSignal(
        params, count=days * 1440, end=np.datetime64("2026-01-01T00:00"), interval=60, seed=7, anomaly_rate=0
    )
    times, values, _ = next(signal.blocks())
    following = times[-1] + MINUTE * np.arange(1, 1441)
    usable = np.ones(len(times), dtype=bool)
    base = replay(times, values, usable, following, period=DAY, periods=7, tolerance=MINUTE // 2)
    return base, profile, values


def _lay(shape: str, sensor_type: str = "temperature", seed: int = 0):
    base, profile, history = _base(sensor_type)
    laid = lay_shape(
        shape,
        base,
        first=FIRST,
        normal_min=profile.normal_min,
        normal_max=profile.normal_max,
        sigma=noise_sigma(history),
        lsb=resolution(history),
        rng=np.random.default_rng(seed),
    )
    return laid, base, profile, noise_sigma(history), resolution(history)


def test_replay_continues_the_same_time_of_day_and_skips_unusable_readings():
    times = np.datetime64("2026-01-01T00:00") + MINUTE * np.arange(3 * 1440)
    values = np.arange(3 * 1440, dtype=float)
    usable = np.ones(len(times), dtype=bool)
    usable[-1440 : -1440 + 60] = False  # yesterday's first hour: a labelled fault
    following = times[-1] + MINUTE * np.arange(1, 121)
    got = replay(times, values, usable, following, period=DAY, periods=7, tolerance=MINUTE // 2)
    assert got[60:].tolist() == values[-1440 + 60 : -1440 + 120].tolist()  # one day back
    assert got[:60].tolist() == values[-2 * 1440 : -2 * 1440 + 60].tolist()  # two days back, past the fault
    far = following + 10 * DAY
    assert np.isnan(replay(times, values, usable, far, period=DAY, periods=7, tolerance=MINUTE // 2)).all()


def test_noise_and_resolution_are_the_sensors_own():
    _, profile, history = _base("rpm")
    assert resolution(history) == 1.0  # rpm is reported in whole turns
    assert noise_sigma(history) == pytest.approx(profile.noise, rel=0.25)
    _, _, history = _base("vibration")
    assert resolution(history) == pytest.approx(0.001)


@pytest.mark.parametrize("shape", list(HoldoutShape.values))
@pytest.mark.parametrize("sensor_type", list(PROFILES))
def test_outside_its_fault_each_shape_leaves_the_normal_readings_alone(shape, sensor_type):
    laid, base, _, _, lsb = _lay(shape, sensor_type)
    outside = np.ones(len(base), dtype=bool)
    outside[laid.first : laid.last + 1] = False
    assert np.array_equal(laid.values[outside], quantize(base, lsb)[outside])
    assert laid.present[outside].all()
    # Its length: a spike train ends with its last spike, up to SPIKE_GAPS[1] readings short of it.
    assert laid.first == FIRST and laid.last - laid.first + 1 > SHAPE_LENGTHS[shape] - SPIKE_GAPS[1]
    assert np.isfinite(laid.values).all()
    assert np.array_equal(laid.values, quantize(laid.values, lsb))  # on the sensor's own grid


@pytest.mark.parametrize("sensor_type", list(PROFILES))
def test_the_drift_stays_inside_the_normal_range_for_hours_then_crosses_it(sensor_type):
    laid, base, profile, _, _ = _lay(HoldoutShape.DRIFT, sensor_type)
    inside = laid.values[laid.first : laid.crossing]
    assert laid.crossing - laid.first >= DRIFT_INSIDE  # four hours at one reading a minute
    assert ((inside >= profile.normal_min) & (inside <= profile.normal_max)).all()
    crossed = laid.values[laid.crossing]
    assert crossed > profile.normal_max or crossed < profile.normal_min
    assert laid.last == laid.crossing + DRIFT_PAST - 1
    # A straight ramp away from the normal behaviour: the departure grows by the same amount each reading.
    departure = (laid.values - base)[laid.first : laid.last + 1]
    slope = np.polyfit(np.arange(len(departure)), departure, 1)[0]
    assert slope == pytest.approx(laid.detail["rate_per_reading"], rel=0.02)
    assert abs(departure[-1]) > abs(departure[DRIFT_INSIDE // 2]) > abs(departure[0])


@pytest.mark.parametrize("sensor_type", list(PROFILES))
def test_the_step_stays_inside_the_normal_range(sensor_type):
    laid, base, profile, sigma, lsb = _lay(HoldoutShape.STEP, sensor_type)
    fault = laid.values[laid.first : laid.last + 1]
    assert ((fault >= profile.normal_min) & (fault <= profile.normal_max)).all()
    departure = (laid.values - base)[laid.first : laid.last + 1]
    assert np.allclose(departure, laid.magnitude, atol=lsb)
    width = profile.normal_max - profile.normal_min
    assert abs(laid.magnitude) <= 0.12 * width + 1e-9 and abs(laid.magnitude) > 3 * sigma


@pytest.mark.parametrize("sensor_type", list(PROFILES))
def test_the_variance_grows_from_one_to_six_times_with_the_same_mean(sensor_type):
    laid, base, _, sigma, lsb = _lay(HoldoutShape.VARIANCE, sensor_type)
    fault = slice(laid.first, laid.last + 1)
    assert laid.values[fault].mean() == pytest.approx(base[fault].mean(), abs=lsb)
    noise = laid.values[fault] - base[fault]  # the added part; the base has the sensor's own sigma already
    early, late = noise[:30], noise[-30:]
    total_early = np.sqrt(early.var() + sigma**2) / sigma
    total_late = np.sqrt(late.var() + sigma**2) / sigma
    assert total_early < 1.6
    assert 4.5 < total_late < 7.5


@pytest.mark.parametrize("sensor_type", list(PROFILES))
def test_the_oscillation_is_at_its_new_frequency(sensor_type):
    laid, base, profile, sigma, _ = _lay(HoldoutShape.OSCILLATION, sensor_type)
    departure = (laid.values - base)[laid.first : laid.last + 1]
    spectrum = np.abs(np.fft.rfft(departure))
    frequencies = np.fft.rfftfreq(len(departure))
    assert frequencies[spectrum.argmax()] == pytest.approx(1 / OSCILLATION_PERIOD, abs=1 / len(departure))
    assert laid.magnitude >= 3 * sigma - 1e-9
    fault = laid.values[laid.first : laid.last + 1]
    assert ((fault >= profile.normal_min) & (fault <= profile.normal_max)).all()


@pytest.mark.parametrize("sensor_type", list(PROFILES))
def test_the_frozen_value_dithers_by_one_lsb(sensor_type):
    laid, base, _, _, lsb = _lay(HoldoutShape.FROZEN, sensor_type)
    fault = laid.values[laid.first : laid.last + 1]
    held = quantize(base[laid.first - 1], lsb)
    assert np.allclose(fault, held, atol=lsb * 1.001, rtol=0)
    assert len(np.unique(fault)) == 3  # held - 1 LSB, held, held + 1 LSB
    assert (np.diff(fault) == 0).mean() < 0.5  # not a run of equal values: an exact-repeat test misses it


@pytest.mark.parametrize("sensor_type", list(PROFILES))
def test_the_flatline_is_exact_and_plausible(sensor_type):
    laid, base, profile, _, lsb = _lay(HoldoutShape.FLATLINE, sensor_type)
    fault = laid.values[laid.first : laid.last + 1]
    assert (fault == fault[0]).all()
    assert profile.normal_min <= fault[0] <= profile.normal_max
    assert fault[0] == quantize(np.median(base[laid.first - 60 : laid.first]), lsb)


@pytest.mark.parametrize("sensor_type", list(PROFILES))
def test_the_spikes_are_single_and_intermittent(sensor_type):
    laid, base, profile, sigma, lsb = _lay(HoldoutShape.SPIKES, sensor_type)
    changed = np.flatnonzero(np.abs(laid.values - quantize(base, lsb)) > lsb / 2)
    assert (changed - laid.first).tolist() == laid.detail["positions"]
    assert len(changed) >= 5 and (np.diff(changed) >= 6).all()  # single readings, apart
    sizes = np.abs(laid.values - base)[changed]
    assert (sizes >= 8 * sigma - lsb).all() and (sizes >= 0.2 * (profile.normal_max - profile.normal_min) - lsb).all()


def test_the_gap_removes_its_readings_only():
    laid, *_ = _lay(HoldoutShape.GAP)
    assert not laid.present[laid.first : laid.last + 1].any()
    assert laid.present[: laid.first].all() and laid.present[laid.last + 1 :].all()
    assert laid.last - laid.first + 1 == SHAPE_LENGTHS[HoldoutShape.GAP]


def test_a_shape_without_room_after_its_onset_is_refused():
    base, profile, _ = _base("temperature")
    with pytest.raises(ValueError, match="needs 180 readings"):
        lay_shape(
            HoldoutShape.STEP,
            base[:400],
            first=300,
            normal_min=profile.normal_min,
            normal_max=profile.normal_max,
            sigma=0.4,
            lsb=0.01,
            rng=np.random.default_rng(0),
        )


# --- the service --------------------------------------------------------------------------------------------

END = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.django_db
def test_the_service_appends_a_shape_after_the_latest_reading_without_labelling_it():
    call_command("seed_data", "--sensors", "4", "--readings", str(4 * 3 * 1440), "--end", END.isoformat(), "--quiet")
    sensor = Sensor.objects.get(sensor_id="sensor-003")  # PUMP-001 pressure: no degradation on pressure
    labels = FaultLabel.objects.count()
    appended = readings_holdout_append(sensor=sensor, shape=HoldoutShape.FLATLINE, readings=600, lead=120)
    assert appended.stored == 600
    assert appended.first == END + timedelta(minutes=1) and appended.last == END + timedelta(minutes=600)
    assert appended.onset == END + timedelta(minutes=121) and appended.end == END + timedelta(minutes=300)
    after = Reading.objects.filter(sensor=sensor, time__gt=END).order_by("time")
    flat = list(after.filter(time__gte=appended.onset, time__lte=appended.end).values_list("value", flat=True))
    assert len(flat) == 180 and len(set(flat)) == 1
    # Before the onset, the sensor's readings of the same time one day earlier (none of them labelled).
    lead = list(after.filter(time__lt=appended.onset).values_list("time", "value"))
    day_before = dict(
        Reading.objects.filter(sensor=sensor, time__gt=END - timedelta(days=1)).values_list("time", "value")
    )
    labelled = FaultLabel.objects.filter(sensor=sensor, end__gt=END - timedelta(days=1))
    clean = [
        (moment, value)
        for moment, value in lead
        if not any(label.start <= moment - timedelta(days=1) <= label.end for label in labelled)
    ]
    assert clean and all(value == day_before[moment - timedelta(days=1)] for moment, value in clean)
    # Recorded on the sensor for staff, never as a fault label (training reads those).
    assert FaultLabel.objects.count() == labels
    sensor.refresh_from_db()
    assert sensor.metadata[HOLDOUT_MARK] == [appended.as_record()]

    gap = readings_holdout_append(sensor=sensor, shape=HoldoutShape.GAP, readings=300, lead=60)
    assert gap.stored == 300 - SHAPE_LENGTHS[HoldoutShape.GAP]
    assert not Reading.objects.filter(sensor=sensor, time__gte=gap.onset, time__lte=gap.end).exists()
    clean = readings_holdout_append(sensor=Sensor.objects.get(sensor_id="sensor-004"), shape=None, readings=60, lead=0)
    assert clean.stored == 60 and clean.onset is None

    # A day later, the flatline's time of day is replayed from two days back: an appended shape is not normal.
    sensor.refresh_from_db()
    readings_holdout_append(sensor=sensor, shape=None, readings=1440, lead=0)
    day = timedelta(days=1)
    replayed = Reading.objects.filter(sensor=sensor, time__gte=appended.onset + day, time__lte=appended.end + day)
    values = dict(replayed.values_list("time", "value"))
    assert len(values) == 180 and len(set(values.values())) > 20
    two_days = dict(
        Reading.objects.filter(sensor=sensor, time__gte=appended.onset - day, time__lte=appended.end - day).values_list(
            "time", "value"
        )
    )
    assert all(value == two_days[moment - 2 * day] for moment, value in values.items() if moment - 2 * day in two_days)


@pytest.mark.django_db
def test_the_service_refuses_readings_in_the_future_and_sensors_without_history():
    call_command("seed_data", "--sensors", "4", "--readings", str(4 * 2 * 1440), "--end", END.isoformat(), "--quiet")
    sensor = Sensor.objects.get(sensor_id="sensor-003")
    with pytest.raises(ValueError, match="into the future"):
        readings_holdout_append(sensor=sensor, shape=HoldoutShape.STEP, readings=600, lead=60, now=END)
    Reading.objects.filter(sensor=sensor).delete()
    with pytest.raises(ValueError, match="no readings"):
        readings_holdout_append(sensor=sensor, shape=HoldoutShape.STEP, readings=600, lead=60)
    assert not Reading.objects.filter(sensor=sensor).exists()


# --- the bench's path on a small fleet ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_normal_model_flags_every_holdout_shape_on_a_small_fleet(mlflow_settings):
    from bench.holdout import NORMAL, PRODUCT, append_holdout, measure, plan_sensors
    from mlops.scoring import clear_model_cache

    clear_model_cache()
    # 12 assets, three days a minute apart; no injected faults (the normal model needs no labels; assets 1, 5 and 9
    # degrade and are left out), so 8 assets get one shape each and one stays clean.
    call_command(
        "seed_data", "--sensors", "48", "--readings", str(48 * 3 * 1440), "--anomaly-rate", "0", "--end",
        END.isoformat(), "--quiet",
    )  # fmt: skip
    call_command("train_models", "--detector", "normal", stdout=StringIO())
    plan = plan_sensors(shapes=list(HoldoutShape.values), repeats=1, clean_assets=1)
    appended = append_holdout(plan, hours=12)
    until = max(item.last for item in appended) + timedelta(minutes=1)
    call_command("score_readings", "--from", END.isoformat(), "--to", until.isoformat(), stdout=StringIO())
    result = measure(appended, {item.sensor.sensor_id: item.sensor for item in plan}, window=10)

    normal = {row["shape"]: row for row in result[NORMAL]["shapes"]}
    assert set(normal) == set(HoldoutShape.values)
    missed = [shape for shape, row in normal.items() if not row["detected"]]
    assert not missed, normal
    assert normal[HoldoutShape.DRIFT]["before_crossing"], normal[HoldoutShape.DRIFT]
    assert result[PRODUCT]["detected"] == 8
    # The targets at one reading a minute: median time to detection under 30 minutes, at most one false
    # anomaly per clean sensor-week (28 clean sensors, two sensor-weeks here), none when a gap ends.
    assert result[NORMAL]["median_minutes"] < 30
    assert result[NORMAL]["false_per_sensor_week"] <= 1, result[NORMAL]["clean_false"]
    # None when a gap or a flatline ends: the window holding the flatline's last minutes and the return is the run's
    # return, not a departure (mlops.normal._flat_returns).
    product = {row["shape"]: row for row in result[PRODUCT]["shapes"]}
    for shape in (HoldoutShape.GAP, HoldoutShape.FLATLINE, HoldoutShape.FROZEN):
        assert normal[shape]["anomalies_after_end"] == 0, normal[shape]
        assert product[shape]["anomalies_after_end"] == 0, product[shape]
    clear_model_cache()


@pytest.mark.django_db
def test_inject_fault_runs_a_drill_on_a_stopped_sensor(settings):
    settings.DEBUG = True  # development: pytest-django runs tests with DEBUG off
    call_command("seed_data", "--sensors", "4", "--readings", str(4 * 2 * 1440), "--end", END.isoformat(), "--quiet")
    out = StringIO()
    call_command("inject_fault", "--sensor", "sensor-003", "--shape", "drift", stdout=out)
    text = out.getvalue()
    assert f"sensor-003: {60 + SHAPE_LENGTHS['drift'] + 120} readings from 2026-06-01T00:01:00+00:00" in text
    assert "Slow drift inside the normal range" in text and "outside the normal range from" in text
    assert "from 2026-06-01T01:01:00+00:00" in text  # the onset, after the 60 lead readings
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--force"):
        call_command("inject_fault", "--sensor", "sensor-003", "--shape", "gap")
    with pytest.raises(CommandError, match="Unknown sensor"):
        call_command("inject_fault", "--sensor", "sensor-999", "--shape", "gap", "--force")

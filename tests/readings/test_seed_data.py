"""`manage.py seed_data`: the quick-start fleet, idempotence, reproducibility, ground truth, guard rails."""

import fcntl
import itertools
import os
import pty
import struct
import subprocess
import sys
import termios
from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import psycopg
import pytest
from django.core.management import CommandError, call_command

from mlops.choices import AlertKind, AlertSeverity
from mlops.models import Alert, Anomaly, ScoringRun, ScoringWatermark
from mlops.services import alert_raise
from readings.choices import FaultKind, FaultSource
from readings.models import FaultLabel, Reading
from readings.synthetic import FAULT_SHAPES, PROFILES, SensorSignal, SignalParams, sensor_spec
from sensors.choices import APIKeyScope, SensorType
from sensors.models import APIKey, Asset, Sensor
from tests.conftest import ROOT, run_manage, scratch_database, server_dsn, server_url

# The kinds the generator makes: every fault kind ("normal", a false alarm found by staff, is not one).
FAULTS = set(FaultKind) - {FaultKind.NORMAL}

END = "2026-06-01T12:00:00Z"


@pytest.fixture(autouse=True)
def development_mode(settings):
    # The test runner forces DEBUG off; seed_data's --reset guard reads it.
    settings.DEBUG = True


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_data", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_default_run_gives_20_sensors_and_20000_readings_on_several_sites():
    out = seed()
    assert Sensor.objects.count() == 20
    assert Reading.objects.count() == 20_000
    assert Asset.objects.values("site").distinct().count() > 1
    assert Asset.objects.values("location").distinct().count() > 1
    assert set(Sensor.objects.values_list("sensor_type", flat=True)) >= {"temperature", "vibration", "pressure", "flow"}
    assert "readings: created 20000, already present 0" in out
    # One reading a minute per sensor, the last at "now" floored to the minute.
    sensor = Sensor.objects.get(sensor_id="sensor-001")
    times = list(Reading.objects.filter(sensor=sensor).order_by("time").values_list("time", flat=True))
    assert len(times) == 1000
    assert {b - a for a, b in itertools.pairwise(times)} == {timedelta(seconds=60)}
    assert times[-1].second == 0 and datetime.now(UTC) - times[-1] < timedelta(minutes=2)


@pytest.mark.django_db
def test_second_run_adds_nothing_and_says_so():
    seed("--readings", "4000")
    first = list(Reading.objects.order_by("sensor_id", "time").values_list("sensor_id", "time", "value"))
    sensors = list(
        Sensor.objects.order_by("sensor_id").values(
            "sensor_id", "sensor_type", "unit", "asset__code", "asset__location"
        )
    )
    out = seed("--readings", "4000")
    assert "Assets: created 0, already present 5" in out
    assert "sensors: created 0, already present 20" in out
    assert "readings: created 0, already present 4000" in out
    assert "fault labels: created 0" in out
    assert list(Reading.objects.order_by("sensor_id", "time").values_list("sensor_id", "time", "value")) == first
    assert (
        list(
            Sensor.objects.order_by("sensor_id").values(
                "sensor_id", "sensor_type", "unit", "asset__code", "asset__location"
            )
        )
        == sensors
    )


@pytest.mark.django_db
def test_more_sensors_later_keeps_the_existing_ones_as_they_were():
    seed("--sensors", "8", "--readings", "800", "--end", END)
    before = {s.sensor_id: (s.sensor_type, s.unit, s.asset.code) for s in Sensor.objects.select_related("asset")}
    out = seed("--sensors", "12", "--readings", "1200", "--end", END)
    after = {s.sensor_id: (s.sensor_type, s.unit, s.asset.code) for s in Sensor.objects.select_related("asset")}
    assert "sensors: created 4, already present 8" in out
    assert {k: after[k] for k in before} == before


def _dump(dbname: str) -> list[tuple]:
    with psycopg.connect(server_dsn(dbname)) as conn:
        readings = conn.execute(
            "SELECT s.sensor_id, r.time, r.value, r.quality FROM readings_reading r "
            "JOIN sensors_sensor s ON s.id = r.sensor_id ORDER BY 1, 2"
        ).fetchall()
        faults = conn.execute(
            "SELECT s.sensor_id, f.kind, f.start, f.end FROM readings_faultlabel f "
            "JOIN sensors_sensor s ON s.id = f.sensor_id ORDER BY 1, 3"
        ).fetchall()
    return readings + faults


def _seed_new_database(*args: str) -> list[tuple]:
    with scratch_database() as name:
        env = {"DATABASE_URL": server_url(name)}
        assert run_manage("migrate", "--no-input", env=env).returncode == 0
        result = run_manage("seed_data", "--readings", "6000", "--end", END, *args, env=env)
        assert result.returncode == 0, result.stderr
        return _dump(name)


def test_same_seed_gives_identical_databases_and_another_seed_does_not():
    first = _seed_new_database("--seed", "7")
    assert len(first) > 6000
    assert _seed_new_database("--seed", "7", "--batch-size", "777") == first
    assert _seed_new_database("--seed", "8") != first


def _readings_by_sensor() -> dict[str, dict]:
    series: dict[str, dict] = {}
    for sensor_id, time, value, quality in Reading.objects.values_list("sensor__sensor_id", "time", "value", "quality"):
        series.setdefault(sensor_id, {})[time] = (value, quality)
    return series


@pytest.mark.django_db
def test_ground_truth_faults_lie_where_the_readings_deviate():
    args = ("--readings", "60000", "--anomaly-rate", "0.05", "--end", END)
    seed(*args)
    faulty = _readings_by_sensor()
    labels = [
        (label.sensor.sensor_id, label.kind, label.start, label.end, label.sensor.normal_max - label.sensor.normal_min)
        for label in FaultLabel.objects.filter(source=FaultSource.SEED).select_related("sensor")
    ]
    assert {kind for _, kind, *_ in labels} - {FaultKind.DEGRADATION} == FAULTS - {FaultKind.DEGRADATION}
    # The same fleet without injected faults: identical except inside the labels.
    seed("--reset", *args[:2], "--anomaly-rate", "0", *args[4:])
    clean = _readings_by_sensor()

    covered = set()
    for sensor_id, kind, start, end, width in labels:
        if kind == FaultKind.DEGRADATION:
            continue  # part of both runs: it is the machine, not the sensor
        times = sorted(t for t in faulty[sensor_id] if start <= t <= end)
        covered.update((sensor_id, t) for t in times)
        got = np.array([faulty[sensor_id][t][0] for t in times])
        quality = np.array([faulty[sensor_id][t][1] for t in times])
        expected = np.array([clean[sensor_id][t][0] for t in times])
        assert len(times) >= 1 and np.any(got != expected), (sensor_id, kind, start)
        if kind == FaultKind.SPIKE:
            assert np.all(np.abs(got - expected) > 0.5 * width) and np.all(quality < 1)
        elif kind == FaultKind.DROPOUT:
            assert np.all(quality == 0) and np.ptp(got) == 0
        elif kind == FaultKind.STUCK:
            assert np.ptp(got) == 0 and np.ptp(expected) > 0
        elif kind == FaultKind.NOISE_BURST:
            assert np.std(got - expected) > 0 and np.all(quality < 1)
        elif kind in (FaultKind.LEVEL_SHIFT, FaultKind.DRIFT):
            assert abs(got[-1] - expected[-1]) > 0.2 * width
    for sensor_id, series in faulty.items():
        for t, (value, quality) in series.items():
            if (sensor_id, t) not in covered:
                assert (value, quality) == clean[sensor_id][t], (sensor_id, t)


@pytest.mark.django_db
def test_some_assets_degrade_slowly_and_are_labelled():
    seed("--sensors", "40", "--readings", "40000", "--end", END)
    degradations = FaultLabel.objects.filter(kind=FaultKind.DEGRADATION).select_related("sensor")
    assert degradations.exists()
    for label in degradations:
        before = Reading.objects.filter(sensor=label.sensor, time__lt=label.start).values_list("value", flat=True)
        last = Reading.objects.filter(sensor=label.sensor, time__gte=label.end - timedelta(minutes=60))
        assert (
            np.mean(list(last.values_list("value", flat=True))) > np.mean(list(before)) + label.sensor.normal_max * 0.05
        )


@pytest.mark.django_db
def test_reset_is_refused_in_production_without_force(settings):
    seed("--readings", "400")
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--force"):
        seed("--reset", "--readings", "400")
    assert Reading.objects.count() == 400
    out = seed("--reset", "--force", "--readings", "200")
    assert (
        "Reset: deleted 400 readings, 0 fault labels, 0 anomalies, 0 alerts, 0 scoring watermarks, 0 scoring runs, "
        "20 sensors, 5 assets." in out
    )
    assert Reading.objects.count() == 200


@pytest.mark.django_db
def test_reset_starts_over_and_leaves_real_sensors_alone(sensor):
    Reading.objects.create(sensor=sensor, time=datetime(2026, 1, 1, tzinfo=UTC), value=1.0)
    seed("--readings", "400", "--end", END)
    seeded_pks = set(Sensor.objects.exclude(pk=sensor.pk).values_list("pk", flat=True))
    out = seed("--reset", "--readings", "400", "--end", END)
    assert (
        "Reset: deleted 400 readings, 0 fault labels, 0 anomalies, 0 alerts, 0 scoring watermarks, 0 scoring runs, "
        "20 sensors, 5 assets." in out
    )
    assert "sensors: created 20, already present 0" in out
    assert seeded_pks.isdisjoint(Sensor.objects.values_list("pk", flat=True))
    assert Reading.objects.filter(sensor=sensor).count() == 1
    assert Sensor.objects.filter(pk=sensor.pk, asset=sensor.asset).exists()


@pytest.mark.django_db
def test_seed_never_writes_into_a_real_sensor_of_the_same_id(sensor):
    sensor.sensor_id = "sensor-002"
    sensor.save()
    with pytest.raises(CommandError, match="sensor-002 exists and was not created by seed_data"):
        seed("--readings", "400")
    assert not Reading.objects.filter(sensor=sensor).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sensors", "0"], "--sensors must be at least 1"),
        (["--readings", "-5"], "--readings must not be negative"),
        (["--interval", "0"], "--interval must be at least 1 second"),
        (["--anomaly-rate", "0.9"], "--anomaly-rate must be between 0 and 0.5"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--end", "yesterday-ish"], "is not an ISO 8601 date-time"),
    ],
)
@pytest.mark.django_db
def test_bad_option_values_say_what_is_wrong(args, message):
    with pytest.raises(CommandError, match=message):
        seed(*args)
    assert not Sensor.objects.exists()


def test_progress_bar_on_a_terminal_and_one_line_otherwise(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_"))}
    env.update(DJANGO_DEBUG="true", DJANGO_VAR_DIR=str(tmp_path))
    command = [sys.executable, str(ROOT / "manage.py"), "seed_data", "--readings", "3000"]
    assert (
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT).returncode == 0
    )

    primary, secondary = pty.openpty()
    # A real terminal has a size; a bare pty reports 0 columns.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.run(command, env=env, cwd=ROOT, stdout=secondary, stderr=secondary, timeout=120)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    terminal = b"".join(chunks).decode()
    assert proc.returncode == 0, terminal
    assert "readings/s" in terminal and "100%" in terminal

    piped = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0
    assert piped.stdout.count("\n") == 2  # the summary, and "nothing to add"
    assert "readings/s" not in piped.stdout


@pytest.mark.django_db
def test_if_empty_seeds_a_new_database_only(sensor):
    out = seed("--if-empty")
    assert "not seeding" in out
    assert Sensor.objects.count() == 1


def test_sqlite_default_seeds_and_reruns(tmp_path):
    env = {"DJANGO_VAR_DIR": str(tmp_path)}
    assert run_manage("migrate", "--no-input", env=env).returncode == 0
    first = run_manage("seed_data", env=env)
    assert first.returncode == 0, first.stderr
    assert "readings: created 20000, already present 0" in first.stdout
    again = run_manage("seed_data", env=env)
    assert "readings: created 0, already present 20000" in again.stdout


# --- ground truth stays true across reruns ---------------------------------------------------------------------------


def _labels() -> set[tuple]:
    return set(
        FaultLabel.objects.filter(source=FaultSource.SEED).values_list("sensor__sensor_id", "kind", "start", "end")
    )


def _assert_every_label_is_true() -> None:
    """Each seeded label lies on stored readings that carry its fault, as the generator makes it; none overlap."""
    by_sensor_kind: dict[tuple, list] = {}
    for label in FaultLabel.objects.filter(source=FaultSource.SEED).select_related("sensor").order_by("start"):
        sensor = label.sensor
        rows = list(
            Reading.objects.filter(sensor=sensor, time__gte=label.start, time__lte=label.end)
            .order_by("time")
            .values_list("value", "quality")
        )
        where = (sensor.sensor_id, label.kind, label.start, label.end)
        # A label covers only stored readings: one per interval from its start to its end, none missing.
        assert len(rows) == (label.end - label.start) // timedelta(seconds=sensor.sampling_interval) + 1, where
        values, quality = np.array(rows).T
        fault_quality = FAULT_SHAPES.get(label.kind, (0, 0, 1.0))[2]
        if label.kind in (FaultKind.SPIKE, FaultKind.NOISE_BURST, FaultKind.DROPOUT):
            # Normal readings have quality 1: the gateway's quality is the fault's fingerprint.
            assert np.all(quality == fault_quality), where
        if label.kind == FaultKind.DROPOUT:
            assert np.all(values == PROFILES[sensor.sensor_type].physical_min), where
        if label.kind == FaultKind.STUCK:
            assert np.ptp(values) == 0, where
        if label.kind == FaultKind.SPIKE:
            around = Reading.objects.filter(
                sensor=sensor,
                time__gte=label.start - timedelta(minutes=5),
                time__lte=label.end + timedelta(minutes=5),
                quality=1.0,
            ).values_list("value", flat=True)
            width = sensor.normal_max - sensor.normal_min
            assert np.all(np.abs(values - np.median(list(around))) > 0.5 * width), where
        by_sensor_kind.setdefault((sensor.sensor_id, label.kind), []).append((label.start, label.end))
    for key, spans in by_sensor_kind.items():
        for (_, first_end), (second_start, _) in itertools.pairwise(spans):
            assert first_end < second_start, ("overlapping labels", key, spans)


@pytest.mark.django_db
def test_reruns_with_other_options_never_add_labels_over_normal_readings():
    seed("--end", END)
    _assert_every_label_is_true()
    first = _labels()

    # Other options than the fleet was made with: refused, saying what was used and how to start over.
    for args in (["--seed", "1"], ["--interval", "30"], ["--anomaly-rate", "0.05"]):
        with pytest.raises(CommandError, match=r"--seed 20240601 --interval 60 --anomaly-rate 0\.01.*--reset"):
            seed(*args)
    assert _labels() == first and Reading.objects.count() == 20_000

    # A later --end (what --end now does hours later): only the new readings, only the faults among them.
    later = "2026-06-01T20:00:00Z"
    out = seed("--end", later)
    assert "readings: created 9600, already present 10400" in out
    _assert_every_label_is_true()
    topped_up = _labels()
    assert first < topped_up
    assert all(start > datetime(2026, 6, 1, 12, tzinfo=UTC) for _, _, start, _ in topped_up - first)

    # More sensors: the new ones get readings and labels, the others nothing (their windows are already stored).
    out = seed("--sensors", "24")
    assert "sensors: created 4, already present 20" in out
    _assert_every_label_is_true()
    grown = _labels()
    assert topped_up < grown
    assert {sensor_id for sensor_id, *_ in grown - topped_up} <= {f"sensor-0{n}" for n in range(21, 25)}
    # The fleet's end moved with the top-up: the new sensors end where the others do.
    assert Reading.objects.filter(sensor__sensor_id="sensor-024").latest("time").time == datetime(
        2026, 6, 1, 20, tzinfo=UTC
    )

    # Plain reruns now add nothing at all.
    out = seed("--sensors", "24")
    assert "Nothing to add" in out and "fault labels: created 0" in out
    assert _labels() == grown


@pytest.mark.django_db
def test_reset_reports_each_kind_and_forgets_what_was_derived_from_the_seeded_data(sensor):
    """Deleting sensors cascades to anomalies and alerts: each kind is counted apart, and scoring starts over."""
    seed("--readings", "2000", "--end", END)
    labels = FaultLabel.objects.count()
    assert labels
    first, second = Sensor.objects.get(sensor_id="sensor-001"), Sensor.objects.get(sensor_id="sensor-002")
    t0 = datetime(2026, 6, 1, 10, tzinfo=UTC)
    found = [
        Anomaly.objects.create(
            sensor=s, start=t0 + timedelta(minutes=m), end=t0 + timedelta(minutes=m + 9), score=0.97, model_name="m"
        )
        for s, m in ((first, 0), (first, 30), (second, 0))
    ]
    alert_raise(sensor=first, kind=AlertKind.ANOMALY, severity=AlertSeverity.CRITICAL, title="a", anomaly=found[0])
    alert_raise(sensor=second, kind=AlertKind.OUT_OF_RANGE, severity=AlertSeverity.WARNING, title="b")
    # Where scheduled scoring of each sensor continues, and the log of scoring runs per type.
    for each in Sensor.objects.all():
        ScoringWatermark.objects.create(sensor=each, scored_until=datetime(2026, 6, 1, 12, tzinfo=UTC))
    for sensor_type in set(Sensor.objects.values_list("sensor_type", flat=True)):
        ScoringRun.objects.create(
            sensor_type=sensor_type,
            model_name="m",
            model_version="1",
            start=t0,
            end=datetime(2026, 6, 1, 12, tzinfo=UTC),
        )
    # What belongs to the real sensor (a temperature sensor) stays.
    real_anomaly = Anomaly.objects.create(sensor=sensor, start=t0, end=t0, score=0.9, model_name="m")
    seeded_asset = Asset.objects.get(code="PUMP-001")
    only_seeded = APIKey.objects.create_key(name="only seeded", scope=APIKeyScope.READ)[0]
    only_seeded.assets.set([seeded_asset])
    mixed = APIKey.objects.create_key(name="mixed", scope=APIKeyScope.READ)[0]
    mixed.assets.set([seeded_asset, sensor.asset])

    out = seed("--reset", "--readings", "2000", "--end", END)
    assert (
        f"Reset: deleted 2000 readings, {labels} fault labels, 3 anomalies, 2 alerts, 20 scoring watermarks, "
        "7 scoring runs, 20 sensors, 5 assets; revoked 1 API key limited to seeded assets only." in out
    )
    assert list(Anomaly.objects.all()) == [real_anomaly]
    assert not Alert.objects.exists()
    # The new seeded sensors start afresh; the real sensor keeps its watermark (its resolved alerts stay
    # resolved), and its type its log of runs.
    assert list(ScoringWatermark.objects.values_list("sensor", flat=True)) == [sensor.pk]
    assert list(ScoringRun.objects.values_list("sensor_type", flat=True)) == [SensorType.TEMPERATURE]
    # A key limited to deleted assets would otherwise have no limit left, i.e. see every asset.
    only_seeded.refresh_from_db()
    mixed.refresh_from_db()
    assert only_seeded.revoked and not mixed.revoked
    assert list(mixed.assets.all()) == [sensor.asset]


@pytest.mark.django_db
def test_the_default_fleet_has_every_fault_kind_the_generator_knows():
    seed()
    assert set(FaultLabel.objects.values_list("kind", flat=True)) == FAULTS
    assert set(FAULT_SHAPES) | {FaultKind.DEGRADATION} == FAULTS


@pytest.mark.parametrize("seed_value", [1, 2, 3, 42, 20240601])
def test_every_seed_gives_every_fault_kind_at_the_default_size(seed_value):
    end = np.datetime64("2026-06-01T12:00:00", "us")
    kinds = set()
    for number in range(1, 21):
        spec = sensor_spec(number)
        params = SignalParams(
            number, spec.sensor_type, spec.asset.number, spec.profile.normal_min, spec.profile.normal_max
        )
        signal = SensorSignal(params, count=1000, end=end, interval=60, seed=seed_value, anomaly_rate=0.01)
        kinds |= {kind for kind, *_ in signal.labels()}
    assert kinds == FAULTS

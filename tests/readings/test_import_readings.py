"""`manage.py import_readings`: both forms, gzip, time zones, errors by line, repeats, reruns, labels, creation."""

import gzip
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

import readings.services
from readings.choices import FaultKind, FaultSource
from readings.models import FaultLabel, Reading
from sensors.choices import SensorType
from sensors.models import Asset, Sensor
from tests.factories import AssetFactory, SensorFactory

pytestmark = pytest.mark.django_db

START = datetime(2020, 3, 9, 10, 0, tzinfo=UTC)
SKAB_COLUMNS = [
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
]


def run(*args) -> str:
    out = StringIO()
    call_command("import_readings", *map(str, args), "--quiet", stdout=out)
    return out.getvalue()


def write(path, lines: list[str]):
    path.write_text("\n".join(lines) + "\n")
    return path


def stored(sensor_id: str) -> list[tuple[datetime, float, float]]:
    return list(
        Reading.objects.filter(sensor__sensor_id=sensor_id).order_by("time").values_list("time", "value", "quality")
    )


def skab_file(path, *, rows: int, anomaly: set[int], gzip_it: bool = False):
    """A file in SKAB's layout (';', local naive datetime, 8 sensors, anomaly and changepoint) made here."""
    lines = ["datetime;" + ";".join(SKAB_COLUMNS) + ";anomaly;changepoint"]
    for i in range(rows):
        moment = (START + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")
        values = ";".join(f"{j + i * 0.01:.4f}" for j in range(len(SKAB_COLUMNS)))
        changepoint = 1.0 if (i in anomaly) != (i - 1 in anomaly) else 0.0
        lines.append(f"{moment};{values};{float(i in anomaly)};{changepoint}")
    text = "\n".join(lines) + "\n"
    if gzip_it:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture
def pump():
    asset = AssetFactory(code="PUMP-1")
    return [SensorFactory(sensor_id=f"pump-{n}", asset=asset) for n in (1, 2)]


def test_long_form_stores_every_row(tmp_path, pump):
    path = write(
        tmp_path / "long.csv",
        [
            "sensor_id,time,value,quality",
            "pump-1,2020-03-09T10:00:00Z,1.5,1",
            "pump-2,2020-03-09T10:00:00Z,2.5,0.5",
            "pump-1,2020-03-09T10:01:00Z,1.75,",
        ],
    )
    out = run(path)
    assert stored("pump-1") == [(START, 1.5, 1.0), (START + timedelta(minutes=1), 1.75, 1.0)]
    assert stored("pump-2") == [(START, 2.5, 0.5)]
    assert "3 rows read; readings: 3 stored, 0 already present, 0 repeated in the file, 0 rejected" in out


def test_wide_form_with_a_column_map(tmp_path, pump):
    path = write(
        tmp_path / "wide.csv",
        ["timestamp;a;b", "2020-03-09 10:00:00;1;10", "2020-03-09 10:00:10;2;", "2020-03-09 10:00:20;3;30"],
    )
    out = run(path, "--map", "a=pump-1", "--map", "b=pump-2")
    assert [value for _, value, _ in stored("pump-1")] == [1, 2, 3]
    # A blank cell is no reading, not an error.
    assert stored("pump-2") == [(START, 10.0, 1.0), (START + timedelta(seconds=20), 30.0, 1.0)]
    assert "5 stored" in out and "0 rejected, 1 blank cells skipped" in out


def test_map_file_and_header_names_as_sensor_ids(tmp_path, pump):
    (tmp_path / "map.txt").write_text("# column=sensor\nA = pump-2\n")
    path = write(tmp_path / "w.csv", ["time,pump-1,A", "2020-03-09T10:00:00Z,1,2"])
    run(path, "--map-file", tmp_path / "map.txt")
    assert stored("pump-1") == [(START, 1.0, 1.0)] and stored("pump-2") == [(START, 2.0, 1.0)]


@pytest.mark.parametrize("name", ["wide.csv.gz", "wide.csv"])
def test_gzip_files_are_read_by_suffix_or_content(tmp_path, pump, name):
    text = "time,pump-1\n" + "".join(f"2020-03-09T10:00:{s:02d}Z,{s}\n" for s in range(10))
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()))
    out = run(path)
    assert len(stored("pump-1")) == 10 and "10 stored" in out


def test_naive_times_take_the_timezone_and_explicit_offsets_win(tmp_path, pump):
    path = write(
        tmp_path / "tz.csv",
        [
            "sensor,time,value",
            "pump-1,2020-01-15 10:00:00,1",  # CET, UTC+1
            "pump-1,2020-07-15 10:00:00,2",  # CEST, UTC+2
            "pump-1,2020-01-15T10:00:00+03:00,3",
            "pump-1,2020-01-15T12:00:00Z,4",
        ],
    )
    run(path, "--timezone", "Europe/Berlin")
    assert [(time, value) for time, value, _ in stored("pump-1")] == [
        (datetime(2020, 1, 15, 7, tzinfo=UTC), 3.0),
        (datetime(2020, 1, 15, 9, tzinfo=UTC), 1.0),
        (datetime(2020, 1, 15, 12, tzinfo=UTC), 4.0),
        (datetime(2020, 7, 15, 8, tzinfo=UTC), 2.0),
    ]


def test_naive_times_default_to_utc_and_time_formats(tmp_path, pump):
    write(tmp_path / "a.csv", ["time,pump-1", "2020-03-09 10:00:00,1"])
    write(tmp_path / "b.csv", ["time,pump-2", "09.03.2020 10:00,2"])
    write(tmp_path / "c.csv", ["time,pump-2", f"{int(START.timestamp()) + 60},3"])
    run(tmp_path / "a.csv")
    run(tmp_path / "b.csv", "--time-format", "%d.%m.%Y %H:%M")
    run(tmp_path / "c.csv", "--time-format", "unix")
    assert stored("pump-1") == [(START, 1.0, 1.0)]
    assert stored("pump-2") == [(START, 2.0, 1.0), (START + timedelta(minutes=1), 3.0, 1.0)]


def test_row_errors_are_reported_by_line_and_the_rest_is_imported(tmp_path, pump):
    path = write(
        tmp_path / "bad.csv",
        [
            "sensor,time,value,quality",
            "pump-1,2020-03-09T10:00:00Z,1,1",
            "pump-1,yesterday,2,1",  # line 3
            "pump-1,2020-03-09T10:02:00Z,abc,1",  # line 4
            "pump-1,2020-03-09T10:03:00Z,nan,1",  # line 5
            "pump-1,2020-03-09T10:04:00Z,4,1.5",  # line 6
            "pump-1,1970-01-01T00:00:00Z,5,1",  # line 7
            "pump-1,2020-03-09T10:05:00Z,6",  # line 8
            "nobody,2020-03-09T10:06:00Z,7,1",  # line 9
            "",
            "pump-1,2099-01-01T00:00:00Z,8,1",  # line 11
            "pump-1,2020-03-09T10:07:00Z,9,1",
        ],
    )
    out = run(path)
    assert [value for _, value, _ in stored("pump-1")] == [1.0, 9.0]
    assert "line 3, column 'time': Not a date-time: 'yesterday'" in out
    assert "line 4, column 'value': Required: a finite number, not 'abc'." in out
    assert "line 5, column 'value': Required: a finite number, not 'nan'." in out
    assert "line 6, column 'quality': Must be a number from 0 to 1." in out
    assert "line 7, column 'time': The time is before 1990-01-01T00:00:00+00:00 (READINGS_MIN_TIME)" in out
    assert "line 8: 3 fields where line 1 has 4." in out
    assert "line 9, column 'sensor': Unknown sensor 'nobody'" in out and "--create" in out
    assert "line 11, column 'time': The time is more than 300 s in the future." in out
    assert "10 rows read; readings: 2 stored, 0 already present, 0 repeated in the file, 8 rejected" in out


def test_only_the_first_problems_are_listed_and_the_rest_counted(tmp_path, pump):
    path = write(tmp_path / "bad.csv", ["time,pump-1"] + [f"2020-03-09T10:00:{s:02d}Z,x" for s in range(30)])
    out = StringIO()
    call_command("import_readings", str(path), "--quiet", "--show-errors", "5", stdout=out)
    text = out.getvalue()
    assert "Rejected (30 problems):" in text and "line 6, column 'pump-1'" in text
    assert "line 7," not in text and "... and 25 more." in text


def test_bad_rows_in_a_wide_row_reject_only_their_cells(tmp_path, pump):
    path = write(tmp_path / "w.csv", ["time;pump-1;pump-2", "2020-03-09 10:00:00;1;x", '"2020-03-09 10:00:10";"2";"3"'])
    out = run(path)
    assert [value for _, value, _ in stored("pump-1")] == [1.0, 2.0]
    assert [value for _, value, _ in stored("pump-2")] == [3.0]
    assert "line 2, column 'pump-2': Required: a finite number, not 'x'." in out


@pytest.mark.parametrize("chunk", [2, 50_000])
def test_repeated_timestamps_are_reported_with_line_numbers(tmp_path, pump, chunk):
    path = write(
        tmp_path / "rep.csv",
        [
            "time,pump-1,pump-2",
            "2020-03-09T10:00:00Z,1,10",  # line 2
            "2020-03-09T10:01:00Z,2,20",  # line 3
            "2020-03-09T11:01:00+01:00,3,30",  # line 4: the same instant as line 3
            "2020-03-09T10:02:00Z,4,",  # line 5
            "2020-03-09T10:02:00Z,5,50",  # line 6: pump-1 repeats line 5, pump-2 is new
        ],
    )
    out = run(path, "--chunk-size", chunk)
    assert [value for _, value, _ in stored("pump-1")] == [1.0, 2.0, 4.0]
    assert [value for _, value, _ in stored("pump-2")] == [10.0, 20.0, 50.0]
    assert "line 4: Sensor 'pump-1' at 2020-03-09T10:01:00+00:00 repeats line 3; the first is kept." in out
    assert "line 4: Sensor 'pump-2' at 2020-03-09T10:01:00+00:00 repeats line 3" in out
    assert "line 6: Sensor 'pump-1' at 2020-03-09T10:02:00+00:00 repeats line 5" in out
    assert "3 repeated in the file" in out and "6 stored, 0 already present" in out


def test_a_rerun_adds_nothing_and_says_so(tmp_path, pump):
    path = write(tmp_path / "w.csv", ["time,pump-1"] + [f"2020-03-09T10:{m:02d}:00Z,{m}" for m in range(40)])
    run(path, "--chunk-size", 7)
    out = run(path, "--chunk-size", 11)
    assert Reading.objects.count() == 40
    assert "readings: 0 stored, 40 already present" in out
    assert "Nothing new: every reading of the file was already stored." in out


def test_skab_layout_creates_the_asset_sensors_and_fault_labels(tmp_path):
    anomaly = set(range(5, 12)) | set(range(30, 31)) | set(range(55, 60))  # the last run reaches the file's end
    path = skab_file(tmp_path / "1.csv.gz", rows=60, anomaly=anomaly, gzip_it=True)
    args = [path, "--asset", "SKAB-1", "--create", "--site", "Skoltech", "--label-column", "anomaly"]
    args += ["--label-kind", "level_shift", "--skip-column", "changepoint", "--chunk-size", 8]
    out = run(*args, "--unit", "Current=A")
    asset = Asset.objects.get(code="SKAB-1")
    assert asset.site == "Skoltech" and asset.metadata["imported"] is True
    sensors = {sensor.name: sensor for sensor in Sensor.objects.filter(asset=asset)}
    assert set(sensors) == set(SKAB_COLUMNS)
    assert sensors["Volume Flow RateRMS"].sensor_id == "SKAB-1-volume-flow-raterms"
    assert {name: sensor.sensor_type for name, sensor in sensors.items()} == {
        "Accelerometer1RMS": SensorType.VIBRATION,
        "Accelerometer2RMS": SensorType.VIBRATION,
        "Current": SensorType.CURRENT,
        "Pressure": SensorType.PRESSURE,
        "Temperature": SensorType.TEMPERATURE,
        "Thermocouple": SensorType.TEMPERATURE,
        "Voltage": SensorType.VOLTAGE,
        "Volume Flow RateRMS": SensorType.FLOW,
    }
    assert sensors["Current"].unit == "A" and sensors["Voltage"].unit == ""
    assert {sensor.sampling_interval for sensor in sensors.values()} == {1}
    assert Reading.objects.count() == 60 * 8
    assert "Created asset SKAB-1." in out and "Created 8 sensors" in out

    expected = [(START + timedelta(seconds=a), START + timedelta(seconds=b)) for a, b in [(5, 11), (30, 30), (55, 59)]]
    for sensor in sensors.values():
        labels = FaultLabel.objects.filter(sensor=sensor).order_by("start")
        assert [(label.start, label.end) for label in labels] == expected
        assert {(label.kind, label.source) for label in labels} == {(FaultKind.LEVEL_SHIFT, FaultSource.IMPORT)}
    assert "fault labels: 24 created, 0 already present" in out

    again = run(*args)
    assert FaultLabel.objects.count() == 24 and Reading.objects.count() == 480
    assert "readings: 0 stored, 480 already present" in again
    assert "fault labels: 0 created, 24 already present" in again


def test_long_form_labels_are_per_sensor(tmp_path, pump):
    rows = ["sensor,time,value,fault"]
    for minute in range(6):
        moment = f"2020-03-09T10:{minute:02d}:00Z"
        rows.append(f"pump-1,{moment},1,{int(minute in (1, 2))}")
        rows.append(f"pump-2,{moment},1,{int(minute == 4)}")
    run(write(tmp_path / "l.csv", rows), "--label-column", "fault=spike", "--chunk-size", 3)
    labels = FaultLabel.objects.order_by("sensor__sensor_id").values_list("sensor__sensor_id", "kind", "start", "end")
    assert list(labels) == [
        ("pump-1", "spike", START + timedelta(minutes=1), START + timedelta(minutes=2)),
        ("pump-2", "spike", START + timedelta(minutes=4), START + timedelta(minutes=4)),
    ]


def test_new_sensors_need_a_type_their_name_does_not_tell(tmp_path):
    path = write(tmp_path / "w.csv", ["time,level", "2020-03-09T10:00:00Z,1"])
    with pytest.raises(CommandError, match="--sensor-type 'level'=TYPE"):
        run(path, "--asset", "TANK-1", "--create", "--site", "North")
    assert not Asset.objects.exists()
    run(path, "--asset", "TANK-1", "--create", "--site", "North", "--sensor-type", "level=pressure")
    assert Sensor.objects.get(sensor_id="TANK-1-level").sensor_type == SensorType.PRESSURE


def test_unknown_sensors_without_create_are_a_clear_error(tmp_path, pump):
    path = write(tmp_path / "w.csv", ["time,pump-1,pump-9", "2020-03-09T10:00:00Z,1,2"])
    with pytest.raises(CommandError, match=r"Unknown sensors for columns 'pump-9' -> 'pump-9'.*--map.*--create"):
        run(path)
    with pytest.raises(CommandError, match=r"Asset 'NEW-1' does not exist.*--create --site"):
        run(path, "--asset", "NEW-1")
    assert not Reading.objects.exists()


def test_the_file_goes_to_the_database_in_chunks(tmp_path, pump, monkeypatch):
    batches = []
    real = readings.services.readings_insert

    def spy(*, batch, using="default"):
        batches.append(len(batch))
        return real(batch=batch, using=using)

    monkeypatch.setattr(readings.services, "readings_insert", spy)
    path = write(
        tmp_path / "w.csv",
        ["time,pump-1,pump-2"] + [f"{(START + timedelta(seconds=s)).isoformat()},{s},1" for s in range(1000)],
    )
    out = run(path, "--chunk-size", 100)
    assert batches == [200] * 10
    assert Reading.objects.count() == 2000 and "2,000 stored" in out


def test_long_form_creates_its_sensors_on_the_asset(tmp_path):
    rows = ["sensor,time,value"] + [f"tank-temp,2020-03-09T10:00:{s:02d}Z,{s}" for s in (0, 10, 20)]
    rows.append("bad id,2020-03-09T10:00:00Z,1")  # line 5
    out = run(write(tmp_path / "l.csv", rows), "--asset", "TANK-2", "--create", "--site", "North")
    sensor = Sensor.objects.get(sensor_id="tank-temp")
    assert (sensor.asset.code, sensor.sensor_type, sensor.sampling_interval) == ("TANK-2", "temperature", 10)
    assert len(stored("tank-temp")) == 3
    assert "line 5, column 'sensor': 'bad id' is not a valid sensor ID" in out
    assert Sensor.objects.count() == 1

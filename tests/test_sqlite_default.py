"""The embedded default: no DATABASE_URL means SQLite under the var directory, and it works end to end."""

from tests.conftest import run_manage

WRITE_AND_READ = """
from datetime import UTC, datetime
from django.db import IntegrityError, connection, transaction
from readings.models import Reading
from sensors.models import Asset, Sensor
asset = Asset.objects.create(name="Fan", code="FAN-1", site="South")
sensor = Sensor.objects.create(sensor_id="sensor-001", asset=asset, sensor_type="vibration", unit="mm/s")
t = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
Reading.objects.create(sensor=sensor, time=t, value=3.5, quality=0.9)
try:
    with transaction.atomic():
        Reading.objects.create(sensor=sensor, time=t, value=9.9)
    print("duplicate accepted")
except IntegrityError:
    print("duplicate refused")
r = Reading.objects.get(sensor__sensor_id="sensor-001", time=t)
print(connection.vendor, r.value, r.quality)
import numpy as np
from readings.services import ReadingBatch, readings_insert
times = np.datetime64("2026-05-01T08:00:00", "us") + np.arange(3) * np.timedelta64(90, "s")
batch = ReadingBatch.from_columns(sensor=[sensor.pk] * 3, time=times, value=[1.0, 2.0, 3.0], quality=[1.0] * 3)
print(readings_insert(batch=batch), readings_insert(batch=batch), Reading.objects.count())
"""


def test_sqlite_default_migrates_writes_and_reads(tmp_path):
    env = {"DJANGO_VAR_DIR": str(tmp_path)}
    migrated = run_manage("migrate", "--no-input", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "smartmaint.sqlite3").is_file()

    result = run_manage("shell", "-v", "0", "-c", WRITE_AND_READ, env=env)
    assert result.returncode == 0, result.stderr
    # The batch's first reading is the one stored above: 2 new, then 0 on retry.
    assert result.stdout.split() == ["duplicate", "refused", "sqlite", "3.5", "0.9", "2", "0", "3"]

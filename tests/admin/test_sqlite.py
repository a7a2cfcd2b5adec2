"""The console on the embedded default (SQLite): every page renders from the portable SQL paths."""

from tests.conftest import run_manage

PAGES = """
from datetime import timedelta
from django.test.utils import setup_test_environment
setup_test_environment()  # responses carry their template context
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from readings.services import ReadingBatch, readings_insert
from sensors.models import Asset, Sensor
asset = Asset.objects.create(name="Fan", code="FAN-1", site="South")
sensor = Sensor.objects.create(sensor_id="sensor-001", asset=asset, sensor_type="vibration", unit="mm/s",
                               normal_min=0, normal_max=5)
# Not floored to the minute: the dashboard counts from the moment of its request back 24 h, and with a floored end
# a request past the next minute's start (seconds later, on a busy machine) lost the oldest reading (1,439).
end = timezone.now().replace(microsecond=0, tzinfo=None)
times = [end - timedelta(minutes=i) for i in range(3000)]
readings_insert(batch=ReadingBatch.from_columns(sensor=[sensor.pk] * 3000, time=times,
                                                value=[i % 7 for i in range(3000)], quality=[1.0] * 3000))
client = Client()
client.force_login(User.objects.create_superuser("root", password="x"))
for url in ["/admin/", "/admin/sensors/sensor/", f"/admin/sensors/sensor/{sensor.pk}/change/?range=7d",
            f"/admin/readings/browse/?sensor={sensor.pk}", "/admin/sensors/asset/"]:
    response = client.get(url)
    print(response.status_code, end=" ")
dashboard = client.get("/admin/").context["dashboard"]
print(dashboard["readings_24h"], dashboard["attention"]["total"], end=" ")
row = client.get("/admin/sensors/sensor/").context["cl"].result_list[0]
print(len(row.sparkline_data[0]["x"]), row.signal_state["connectivity"])
"""


def test_console_pages_render_on_sqlite(tmp_path):
    env = {"DJANGO_VAR_DIR": str(tmp_path)}
    migrated = run_manage("migrate", "--no-input", env=env)
    assert migrated.returncode == 0, migrated.stderr
    result = run_manage("shell", "-v", "0", "-c", PAGES, env=env)
    assert result.returncode == 0, result.stderr
    # One reading a minute up to now: 1,440 within 24 h of the request (made well within a minute); the last value
    # (0) is in range; 24 hours.
    assert result.stdout.split() == ["200"] * 5 + ["1440", "0", "24", "online"]

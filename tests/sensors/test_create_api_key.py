"""``manage.py create_api_key``: an operator provisions a gateway's key without the admin; the key is printed once."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from sensors.models import APIKey
from tests.factories import AssetFactory, SensorFactory

pytestmark = pytest.mark.django_db


def create(*args: str) -> tuple[APIKey, str, str]:
    """Run the command; return the key it made, the secret it printed and all it printed."""
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    text = out.getvalue()
    key = APIKey.objects.filter(name=args[0]).latest("created")
    # The secret is the one line that starts with the key's prefix and a dot.
    [secret] = [line for line in text.splitlines() if line.startswith(f"{key.prefix}.")]
    return key, secret, text


def api(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


def test_the_printed_key_authenticates_with_its_scope_and_limit():
    pump, fan = AssetFactory(code="PUMP-07", site="North"), AssetFactory(code="FAN-01", site="North")
    mine = SensorFactory(asset=pump)
    SensorFactory(asset=fan)
    key, secret, text = create("dashboard north", "--scope", "read", "--site", "North", "--asset", "PUMP-07")

    assert "shown only once" in text
    assert (key.scope, key.site, list(key.assets.values_list("code", flat=True))) == ("read", "North", ["PUMP-07"])
    assert key.expiry_date is None
    assert secret not in key.hashed_key  # stored hashed, like keys made in the admin
    sensors = api(secret).get("/api/v1/sensors")
    assert sensors.status_code == 200
    assert [s["sensor_id"] for s in sensors.json()["results"]] == [mine.sensor_id]
    reading = {"sensor_id": mine.sensor_id, "time": "2026-01-01T00:00:00Z", "value": 1.0}
    assert api(secret).post("/api/v1/readings/ingest", {"readings": [reading]}, format="json").status_code == 403


def test_default_scope_is_ingest_and_assets_repeat():
    one, two = AssetFactory(code="A-1"), AssetFactory(code="A-2")
    sensor = SensorFactory(asset=two)
    key, secret, _ = create("gateway 7", "--asset", "A-1", "--asset", "A-2")
    assert key.scope == "ingest"
    assert set(key.assets.all()) == {one, two}
    reading = {"sensor_id": sensor.sensor_id, "time": "2026-01-01T00:00:00Z", "value": 1.0}
    response = api(secret).post("/api/v1/readings/ingest", {"readings": [reading]}, format="json")
    assert response.status_code == 200 and response.json()["accepted"] == 1


def test_expiry_in_days_or_as_a_date():
    before = timezone.now()
    in_days, _, _ = create("thirty days", "--expires", "30")
    assert before + timedelta(days=30) <= in_days.expiry_date <= timezone.now() + timedelta(days=30)
    on_date, _, _ = create("until 2099", "--expires", "2099-01-31")
    assert on_date.expiry_date == datetime(2099, 1, 31, tzinfo=UTC)
    at_time, _, _ = create("until noon", "--expires", "2099-01-31T12:00:00+01:00")
    assert at_time.expiry_date == datetime(2099, 1, 31, 11, tzinfo=UTC)


def test_an_expired_key_no_longer_authenticates():
    key, secret, _ = create("short lived", "--scope", "read", "--expires", "1")
    assert api(secret).get("/api/v1/sensors").status_code == 200
    APIKey.objects.filter(pk=key.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))
    assert api(secret).get("/api/v1/sensors").status_code == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "admin"], "invalid choice: 'admin'"),
        (["--asset", "NOPE-1"], "Unknown asset code(s): NOPE-1"),
        (["--asset", "PUMP-07", "--site", "South"], "not in site 'South'"),
        (["--expires", "next week"], "neither a number of days"),
        (["--expires", "2027-02-30"], "neither a number of days"),
        (["--expires", "2001-01-01"], "already past"),
        (["--expires", "0"], "at least 1"),
    ],
)
def test_bad_input_is_a_clear_error_and_creates_nothing(args, message):
    AssetFactory(code="PUMP-07", site="North")
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("create_api_key", "bad key", *args, stdout=StringIO())
    assert not APIKey.objects.exists()


def test_a_second_active_key_of_the_same_name_is_refused():
    create("gateway 7")
    with pytest.raises(CommandError, match="An active API key named 'gateway 7' exists"):
        call_command("create_api_key", "gateway 7", stdout=StringIO())
    APIKey.objects.update(revoked=True)
    create("gateway 7")  # once the old one is revoked, the name is free again
    assert APIKey.objects.filter(name="gateway 7").count() == 2

"""Gateways retrying overlapping, shuffled batches at the same time: every distinct reading stored once, no 5xx;
a deadlock the database still reports is a 503 to retry, never a 500."""

from __future__ import annotations

import itertools
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from readings.models import Reading
from sensors.choices import APIKeyScope
from sensors.models import APIKey
from tests.conftest import server_dsn
from tests.factories import SensorFactory

URL = "/api/v1/readings/ingest"
CLIENTS, BATCHES, RETRIES = 8, 6, 3
T0 = datetime(2026, 3, 1, tzinfo=UTC)


_names = itertools.count()


def _client() -> APIClient:
    _, raw = APIKey.objects.create_key(name=f"gateway {next(_names)}", scope=APIKeyScope.INGEST)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


@pytest.mark.django_db(transaction=True)
def test_eight_clients_retrying_overlapping_shuffled_batches_store_each_reading_once():
    sensors = [SensorFactory() for _ in range(4)]
    pool = [
        {"sensor_id": sensor.sensor_id, "time": (T0 + timedelta(seconds=10 * i)).isoformat(), "value": float(i)}
        for sensor in sensors
        for i in range(300)
    ]
    clients = [_client() for _ in range(CLIENTS)]
    rng = random.Random(7)  # noqa: S311  (test data, seeded for a reproducible mix)
    # Each client: batches of 400 drawn from the same 1,200 readings, so every batch overlaps the others'.
    plans = [[rng.sample(pool, 400) for _ in range(BATCHES)] for _ in range(CLIENTS)]
    sent = {(item["sensor_id"], item["time"]) for plan in plans for batch in plan for item in batch}

    def run(number: int) -> list[int]:
        codes = []
        try:
            for batch in plans[number]:
                for _ in range(RETRIES):  # a gateway that retries every batch, as after a lost answer
                    codes.append(clients[number].post(URL, {"readings": batch}).status_code)
        finally:
            connections.close_all()
        return codes

    with ThreadPoolExecutor(CLIENTS) as executor:
        codes = [code for result in executor.map(run, range(CLIENTS)) for code in result]

    assert len(codes) == CLIENTS * BATCHES * RETRIES
    assert not [code for code in codes if code >= 500], sorted(set(codes))
    assert set(codes) == {200}
    assert Reading.objects.count() == len(sent)


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_reported_by_the_database_is_a_503_with_retry_after():
    """Another writer (not our ingest, which orders its rows) holds one reading and then waits for the other."""
    sensor = SensorFactory()
    client = _client()
    first, second = T0, T0 + timedelta(seconds=10)
    batch = [{"sensor_id": sensor.sensor_id, "time": moment.isoformat(), "value": 1.0} for moment in (first, second)]
    table = Reading._meta.db_table
    with psycopg.connect(server_dsn(connection.settings_dict["NAME"])) as other:
        # The API's session detects the deadlock first (1 s by default), so it is the one refused.
        other.execute("SET deadlock_timeout = '60s'")
        other.execute(
            f"INSERT INTO {table} (sensor_id, time, value, quality) VALUES (%s, %s, 2, 1)", [sensor.pk, second]
        )
        answer = {}

        def ingest():
            try:
                answer["response"] = client.post(URL, {"readings": batch})
            finally:
                connections.close_all()

        thread = threading.Thread(target=ingest)
        thread.start()
        deadline = time.monotonic() + 60
        with psycopg.connect(server_dsn(connection.settings_dict["NAME"]), autocommit=True) as watcher:
            while time.monotonic() < deadline:  # until the API's insert waits for our row
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> %s",
                    [other.info.backend_pid],
                ).fetchone()[0]
                if waiting:
                    break
                time.sleep(0.05)
        try:
            other.execute(
                f"INSERT INTO {table} (sensor_id, time, value, quality) VALUES (%s, %s, 2, 1)", [sensor.pk, first]
            )
        finally:
            thread.join(120)
    response = answer["response"]
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    assert response.json()["errors"][0]["code"] == "database_unavailable"

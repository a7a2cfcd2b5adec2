"""CSV exports under the web image's gunicorn, for real: slow readers neither starve the server nor get cut files.

gunicorn runs with docker/gunicorn.conf.py in production mode on the suite's PostgreSQL database (the
rows are committed: transactional_db). Its worker timeout is set to 2 s, and the clients read far slower
than that: with the old sync workers the exports were cut off at the timeout with a 200 status, and
/healthz went unanswered while they ran.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection

from readings.models import Reading
from sensors.choices import APIKeyScope
from sensors.models import APIKey
from tests.conftest import ROOT, server_url
from tests.factories import SensorFactory
from tests.services import free_port

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 60_000  # about 3.3 MB of CSV: far more than the socket buffers between server and client hold
START = datetime(2026, 1, 1, tzinfo=UTC)
WORKER_TIMEOUT = 2
READERS = 3


@pytest.fixture
def export(db):
    """A sensor with ROWS readings, a read key, and the URL path of its whole range as CSV."""
    sensor = SensorFactory(sensor_id="slow-001")
    Reading.objects.bulk_create(
        (Reading(sensor=sensor, time=START + timedelta(minutes=i), value=i / 10) for i in range(ROWS)),
        batch_size=10_000,
    )
    _, raw = APIKey.objects.create_key(name="slow reader", scope=APIKeyScope.READ)
    return {"path": f"/api/v1/sensors/{sensor.sensor_id}/readings?format=csv", "key": raw}


@pytest.fixture
def server(export, tmp_path):
    """The image's gunicorn command on a free port: one worker process, the config's threads, a 2 s timeout."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GUNICORN_", "DATABASE_"))},
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "slow-readers-" + "k" * 50,
        "DJANGO_ALLOWED_HOSTS": "localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "DJANGO_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": server_url(connection.settings_dict["NAME"]),
        "REDIS_URL": os.environ.get("REDIS_URL", settings.CACHES["default"]["LOCATION"]),
        "GUNICORN_WORKERS": "1",
        "GUNICORN_TIMEOUT": str(WORKER_TIMEOUT),
        "LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "gunicorn.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(ROOT / "docker" / "gunicorn.conf.py"),
        "smartmaint.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while _healthz_status(port, timeout=2) != 200:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield port, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _healthz_status(port: int, timeout: float) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", "/healthz", headers={"Host": "localhost"})
        return conn.getresponse().status
    except OSError:
        return None


def _slow_socket(port: int) -> socket.socket:
    sock = socket.socket()
    # A small receive window, so the server cannot hand the whole export to the kernel and be done.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(60)
    sock.connect(("127.0.0.1", port))
    return sock


class SlowReader(threading.Thread):
    """Downloads the export over HTTP/1.1 in 16 KB steps with a pause after each (at most ~320 KB/s:
    over 10 s for the whole file, five times the worker timeout)."""

    def __init__(self, port: int, export: dict):
        super().__init__(daemon=True)
        self.port, self.export = port, export
        self.streaming = threading.Event()
        self.body = b""
        self.headers = {}
        self.error = None

    def run(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port)
            conn.sock = _slow_socket(self.port)
            conn.request("GET", self.export["path"], headers={"Host": "localhost", **_auth(self.export)})
            response = conn.getresponse()
            self.status, self.headers = response.status, dict(response.getheaders())
            parts = []
            while chunk := response.read(16_384):  # raises IncompleteRead if the chunked body is cut off
                parts.append(chunk)
                self.streaming.set()
                time.sleep(0.05)
            self.body = b"".join(parts)
        except Exception as exc:  # reported by the test
            self.error = exc
        finally:
            self.streaming.set()


def _auth(export: dict) -> dict:
    return {"Authorization": f"Api-Key {export['key']}"}


def test_csv_exports_outlive_the_worker_timeout_complete_while_healthz_answers(server, export):
    port, log = server
    readers = [SlowReader(port, export) for _ in range(READERS)]
    started = time.monotonic()
    for reader in readers:
        reader.start()
    for reader in readers:
        assert reader.streaming.wait(30)

    # While every export is mid-stream, probes are answered (generous bound; sync workers never answered).
    assert _healthz_status(port, timeout=10) == 200
    assert all(reader.is_alive() for reader in readers), "an export ended before /healthz was probed"

    for reader in readers:
        reader.join(120)
        assert not reader.is_alive()
        assert reader.error is None, f"{reader.error!r}\n{log.read_text()[-3000:]}"
        assert reader.status == 200
        # Chunked, with no length: a cut-off body is an error to the client, not a shorter file.
        assert reader.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in reader.headers
        lines = reader.body.decode().splitlines()
        assert lines[0] == "sensor_id,time,value,quality"
        assert len(lines) == ROWS + 1
        assert lines[-1].split(",")[1] == (START + timedelta(minutes=ROWS - 1)).isoformat()
    # The exports really did outlast the worker timeout, by far.
    assert time.monotonic() - started > 3 * WORKER_TIMEOUT
    assert "WORKER TIMEOUT" not in log.read_text()


def test_an_export_failing_halfway_resets_the_connection_even_for_http_1_0(server, export):
    """HTTP/1.0 has no chunked framing: without the reset, a cut-off export would end like a whole one."""
    port, log = server
    sock = _slow_socket(port)
    request = f"GET {export['path']} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Api-Key {export['key']}\r\n\r\n"
    sock.sendall(request.encode())
    received = sock.recv(16_384)
    assert received.startswith(b"HTTP/1.0 200"), received[:200]

    # The export's database connection dies while the client is still reading (as in a failover).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

    with pytest.raises(ConnectionResetError):
        while data := sock.recv(16_384):
            received += data
        lines = received.count(b"\n")
        pytest.fail(f"the export ended cleanly after {lines} of {ROWS + 1} lines")
    assert received.count(b"\n") < ROWS + 1
    assert "connection reset" in log.read_text()

"""Chunked and gzip request bodies reach ingest (as gateways send them), under the same size limit, through the
WSGI application gunicorn serves."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from wsgiref.util import setup_testing_defaults

import pytest

from readings.models import Reading
from sensors.choices import APIKeyScope
from sensors.models import APIKey
from smartmaint.wsgi import application
from tests.factories import SensorFactory

# The WSGI handler opens and closes connections as in production: committed data, not the test transaction.
pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/readings/ingest"


class Chunked(io.RawIOBase):
    """What gunicorn hands the application for a chunked request: a stream without a Content-Length."""

    def __init__(self, data: bytes, piece: int = 1000):
        self.pieces = [data[i : i + piece] for i in range(0, len(data), piece)]

    def read(self, size=-1):
        return self.pieces.pop(0) if self.pieces else b""


def call(body: bytes, *, key: str, chunked: bool = False, encoding: str | None = None) -> tuple[int, dict]:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": URL,
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Api-Key {key}",
        "wsgi.input": Chunked(body) if chunked else io.BytesIO(body),
    }
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        environ["CONTENT_LENGTH"] = str(len(body))
    if encoding:
        environ["HTTP_CONTENT_ENCODING"] = encoding
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = int(status.split()[0])

    content = b"".join(application(environ, start_response))
    return answer["status"], json.loads(content)


@pytest.fixture
def gateway():
    sensor = SensorFactory()
    _, raw = APIKey.objects.create_key(name="gateway", scope=APIKeyScope.INGEST)
    return sensor, raw


def readings(sensor, count: int) -> bytes:
    items = [
        {"sensor_id": sensor.sensor_id, "time": f"2026-03-01T{i // 60:02d}:{i % 60:02d}:00Z", "value": i}
        for i in range(count)
    ]
    return json.dumps({"readings": items}).encode()


@pytest.mark.parametrize(("chunked", "encoding"), [(True, None), (False, "gzip"), (True, "gzip"), (False, "deflate")])
def test_chunked_and_compressed_bodies_are_ingested(gateway, chunked, encoding):
    sensor, key = gateway
    body = readings(sensor, 100)
    if encoding == "gzip":
        body = gzip.compress(body)
    elif encoding == "deflate":
        body = zlib.compress(body)
    status, answer = call(body, key=key, chunked=chunked, encoding=encoding)
    assert status == 200, answer
    assert answer["accepted"] == 100
    assert Reading.objects.filter(sensor=sensor).count() == 100


def test_the_size_limit_applies_to_the_decompressed_body(gateway, settings):
    sensor, key = gateway
    body = readings(sensor, 600)  # about 50 kB of JSON, compressed to a few kB
    settings.INGEST_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 20_000
    compressed = gzip.compress(body)
    assert len(compressed) < 20_000 < len(body)
    for chunked in (False, True):
        status, answer = call(compressed, key=key, chunked=chunked, encoding="gzip")
        assert status == 413
        assert answer["errors"][0]["code"] == "payload_too_large"
        assert "after decompression" in answer["errors"][0]["detail"]
    status, _ = call(body, key=key, chunked=True)
    assert status == 413
    assert not Reading.objects.exists()


def test_a_gzip_bomb_is_refused_without_inflating_it(gateway, settings):
    _, key = gateway
    settings.INGEST_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000_000
    bomb = gzip.compress(b"[" + b" " * 50_000_000 + b"]")  # 50 MB of spaces in about 50 kB
    status, answer = call(bomb, key=key, encoding="gzip")
    assert status == 413 and answer["errors"][0]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("body", "encoding", "status", "code"),
    [
        (b"not gzip at all", "gzip", 400, "invalid_encoding"),
        (gzip.compress(b'{"readings": []}', mtime=0)[:-8], "gzip", 400, "invalid_encoding"),
        (b"{}", "br", 415, "unsupported_content_encoding"),
    ],
)
def test_bad_encodings_are_clear_client_errors(gateway, body, encoding, status, code):
    _, key = gateway
    answered, answer = call(body, key=key, encoding=encoding)
    assert answered == status and answer["errors"][0]["code"] == code

"""MLflow outages injected on this module's own throwaway `mlflow server` (never the suite's shared one): stopped,
frozen (SIGSTOP), and one model's registry calls hanging (held by a proxy in front of the server).

The score API must degrade, never hang: the champion in memory keeps scoring, a type without one answers a quick
503 that names no internal address, "no champion" is a quick 409, and one type's hanging calls never hold up
another type.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from rest_framework.test import APIClient

from mlops import registry, scoring
from tests.factories import SensorFactory
from tests.services import BIN, _wait_http, free_port

pytestmark = pytest.mark.django_db

TRAINED = "temperature"  # the type given a champion on the throwaway server
UNTRAINED = "vibration"  # a type with no registered model there
GENEROUS = 30  # seconds: an answer "within" this used to take 22 s per MLflow call, or never came
ADDRESS_HINTS = ("127.0.0.1", "localhost", "http://", "https://")


class ThrowawayMLflow:
    """A real `mlflow server` (SQLite store, local artifacts) in its own process group, so that SIGSTOP and SIGKILL
    reach its uvicorn worker too."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.workdir / "mlflow.log"
        self.proc = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.workdir / 'mlflow.db'}",
                "--default-artifact-root",
                str(self.workdir / "artifacts"),
                "--no-serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            cwd=self.workdir,
            start_new_session=True,
        )
        _wait_http(f"{self.url}/health", self.proc, log)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    @contextlib.contextmanager
    def frozen(self):
        """Accepts connections (the kernel does) and never answers, like a hung server."""
        self._signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._signal(signal.SIGCONT)

    def kill(self) -> None:
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class RegistryProxy:
    """A TCP proxy in front of the MLflow server that sees every HTTP request (one per connection: it asks the
    server to close after each answer). It records each request line, and holds (never forwards, never answers)
    those that contain a string of ``hold`` until ``release`` is set."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.lines: list[str] = []
        self.hold: set[str] = set()
        self.held = threading.Event()
        self.release = threading.Event()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def count(self, *parts: str) -> int:
        return sum(all(part in line for part in parts) for line in list(self.lines))

    def close(self) -> None:
        self.release.set()
        self.listener.close()
        for sock in list(self._open):
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, rest = data.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            line = lines[0].decode("latin-1")
            self.lines.append(line)
            if any(part in line for part in self.hold):
                self.held.set()
                self.release.wait()
                return
            kept = [header for header in lines if not header.lower().startswith(b"connection:")]
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                self._open.append(upstream)
                upstream.sendall(b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n" + rest)
                threading.Thread(target=self._pipe, args=(conn, upstream), daemon=True).start()
                self._pipe(upstream, conn)

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                target.sendall(chunk)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = ThrowawayMLflow(tmp_path_factory.mktemp("mlflow-outages"))
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()


@pytest.fixture(scope="module")
def prefix(mlflow_server, django_db_blocker):
    """A champion for TRAINED sensors on the throwaway server, trained once on a seeded fleet (rolled back)."""
    prefix = f"outage-{uuid.uuid4().hex[:8]}"
    with (
        override_settings(MLFLOW_TRACKING_URI=mlflow_server.url, MLFLOW_REGISTRY_URI="", MLFLOW_MODEL_PREFIX=prefix),
        django_db_blocker.unblock(),
        transaction.atomic(),
    ):
        call_command("seed_data", "--sensors", "8", "--readings", "4000", "--end", "2026-03-01T00:00:00Z", stdout=None)
        call_command("train_models", "--types", TRAINED, stdout=None)
        transaction.set_rollback(True)
    return prefix


@pytest.fixture
def proxy(mlflow_server):
    proxy = RegistryProxy(mlflow_server.port)
    yield proxy
    proxy.close()


@pytest.fixture
def app(settings, mlflow_server, prefix):
    """The app on the throwaway server, with the short timeouts a test can wait for."""
    if not mlflow_server.running():  # a test that stopped it failed before starting it again
        mlflow_server.start()
    settings.MLFLOW_TRACKING_URI = mlflow_server.url
    settings.MLFLOW_REGISTRY_URI = ""
    settings.MLFLOW_MODEL_PREFIX = prefix
    settings.MLFLOW_REQUEST_TIMEOUT = 1
    settings.MLFLOW_REQUEST_MAX_RETRIES = 0
    settings.MLFLOW_ALIAS_TTL = 30
    settings.MLFLOW_RETRY_AFTER = 30
    scoring.clear_model_cache()
    yield settings
    scoring.clear_model_cache()


@pytest.fixture
def api(db):
    client = APIClient()
    client.force_authenticate(User.objects.create_user("ops", password="x", is_staff=True))
    # A 5xx is reported like any server error (got_request_exception); the client must still get the JSON answer.
    client.raise_request_exception = False
    return client


def score(api, sensor_type: str):
    sensor = SensorFactory(sensor_type=sensor_type)
    started = time.monotonic()
    response = api.post(f"/api/v1/sensors/{sensor.sensor_id}/score", {"minutes": 60}, format="json")
    return response, time.monotonic() - started


def assert_generic_503(response, settings):
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.MLFLOW_RETRY_AFTER)
    assert response.json() == {
        "type": "server_error",
        "errors": [
            {"code": "mlflow_unavailable", "detail": "The model registry is unavailable; retry later.", "attr": None}
        ],
    }
    body = response.content.decode()
    assert not any(hint in body for hint in ADDRESS_HINTS), body


def test_frozen_mlflow_is_a_503_within_the_request_timeout_naming_no_internal_address(
    app, mlflow_server, api, client, caplog
):
    caplog.set_level(logging.WARNING)
    with mlflow_server.frozen():
        response, took = score(api, TRAINED)
        # Liveness never asks MLflow: it answers while MLflow hangs.
        assert client.get("/healthz").status_code == 200
    assert_generic_503(response, app)
    assert took < GENEROUS
    # The cause, with MLflow's address, is in the server log for the operator.
    assert any(mlflow_server.url in record.getMessage() for record in caplog.records)


def test_stopped_mlflow_is_a_503_naming_no_internal_address_and_scoring_resumes_when_it_is_back(
    app, mlflow_server, api
):
    mlflow_server.kill()
    try:
        response, took = score(api, TRAINED)
        assert_generic_503(response, app)
        assert took < GENEROUS
        # Within MLFLOW_RETRY_AFTER the answer is the same 503, without asking the dead server again.
        assert_generic_503(score(api, TRAINED)[0], app)
    finally:
        mlflow_server.start()
    app.MLFLOW_RETRY_AFTER = 0
    response, _ = score(api, TRAINED)
    assert response.status_code == 200, response.content
    assert response.json()["model_name"] == registry.model_name(TRAINED)


def test_frozen_mlflow_keeps_scoring_with_the_champion_in_memory_and_warns_once(app, mlflow_server, api, caplog):
    app.MLFLOW_ALIAS_TTL = 0  # every request would ask MLflow where the alias points
    first, _ = score(api, TRAINED)
    assert first.status_code == 200, first.content
    version = first.json()["model_version"]
    caplog.set_level(logging.WARNING, logger="mlops.scoring")
    with mlflow_server.frozen():
        answers = [score(api, TRAINED) for _ in range(3)]
        app.MLFLOW_RETRY_AFTER = 0  # ask again (and time out again) on every request: still one warning
        answers += [score(api, TRAINED) for _ in range(2)]
    for response, took in answers:
        assert response.status_code == 200, response.content
        assert response.json()["model_version"] == version
        assert took < GENEROUS
    # One warning per model in use (the type's supervised detector and the fleet's normal-behaviour model).
    models = (registry.model_name(TRAINED), registry.normal_model_name())
    warnings = [record.getMessage() for record in caplog.records if record.name == "mlops.scoring"]
    for name in models:
        mine = [message for message in warnings if f" {name};" in message]
        assert len(mine) == 1 and "in memory" in mine[0], warnings
    assert len(warnings) == 2, warnings
    # MLflow back: the aliases are checked again and each recovery logged.
    assert score(api, TRAINED)[0].status_code == 200
    warnings = [record.getMessage() for record in caplog.records if record.name == "mlops.scoring"][2:]
    assert sorted(warnings) == sorted(f"MLflow answers again for {name}: champion version 1" for name in models)


def test_each_mlflow_call_waits_the_request_timeout_once_and_the_settings_apply_at_once(app, mlflow_server, proxy):
    """Counted at a proxy in front of the frozen server: the number of attempts is the retries setting plus one."""
    app.MLFLOW_TRACKING_URI = proxy.url
    app.MLFLOW_RETRY_AFTER = 0
    alias = f"name={registry.model_name(TRAINED)}&"
    with mlflow_server.frozen():
        started = time.monotonic()
        with pytest.raises(registry.MLflowUnavailable):
            scoring.champion_model(TRAINED)
        assert time.monotonic() - started < GENEROUS
        assert proxy.count("/registered-models/alias", alias) == 1  # MLflow's default would retry 7 times

        app.MLFLOW_REQUEST_MAX_RETRIES = 1
        with pytest.raises(registry.MLflowUnavailable):
            scoring.champion_model(TRAINED)
        assert proxy.count("/registered-models/alias", alias) == 1 + 2

        # Management commands have their own, more patient, values.
        app.MLFLOW_COMMAND_REQUEST_TIMEOUT = 1
        app.MLFLOW_COMMAND_REQUEST_MAX_RETRIES = 2
        with registry.command_timeouts(), pytest.raises(registry.MLflowUnavailable):
            scoring.champion_model(TRAINED)
        assert proxy.count("/registered-models/alias", alias) == 1 + 2 + 3
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"  # back to the request values after the command


def test_no_champion_is_a_409_asked_once_then_remembered(app, proxy, api):
    app.MLFLOW_TRACKING_URI = proxy.url
    answers = [score(api, UNTRAINED) for _ in range(3)]
    for response, took in answers:
        assert response.status_code == 409
        assert "train_models" in response.json()["errors"][0]["detail"]
        assert took < GENEROUS
    # One question to the registry for three answers, and no retry of its "not found".
    assert proxy.count("/registered-models/alias", f"name={registry.model_name(UNTRAINED)}&") == 1


def _in_thread(function, *args):
    outcome = {}

    def run():
        try:
            outcome["value"] = function(*args)
        except Exception as exc:  # the outcome is asserted by the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_type_whose_registry_calls_hang_holds_up_no_other_type(app, proxy):
    app.MLFLOW_TRACKING_URI = proxy.url
    app.MLFLOW_REQUEST_TIMEOUT = 120  # the held call stays blocked until the test releases it
    proxy.hold.add(f"name={registry.model_name(UNTRAINED)}&")
    hung, hung_outcome = _in_thread(scoring.champion_model, UNTRAINED)
    assert proxy.held.wait(GENEROUS), "the first type's registry call never reached MLflow"

    other, other_outcome = _in_thread(scoring.champion_model, TRAINED)
    other.join(GENEROUS)
    try:
        # The second type was answered (and its model loaded) while the first type's call is still blocked.
        assert not other.is_alive(), "the second type waited for the first type's registry call"
        assert hung.is_alive()
        assert other_outcome["value"].name == registry.model_name(TRAINED)
    finally:
        proxy.release.set()
        hung.join(GENEROUS)
    assert isinstance(hung_outcome.get("error"), registry.MLflowUnavailable)


def test_a_slow_alias_check_does_not_queue_the_requests_of_its_own_type(app, proxy):
    app.MLFLOW_TRACKING_URI = proxy.url
    cached = scoring.champion_model(TRAINED)
    app.MLFLOW_ALIAS_TTL = 0
    app.MLFLOW_REQUEST_TIMEOUT = 120
    proxy.hold.add(f"name={registry.model_name(TRAINED)}&")
    checking, _ = _in_thread(scoring.champion_model, TRAINED)
    assert proxy.held.wait(GENEROUS)
    try:
        # While one request asks MLflow, the others of the type score with the version in memory.
        assert scoring.champion_model(TRAINED) is cached
        assert checking.is_alive()
    finally:
        proxy.release.set()
        checking.join(GENEROUS)

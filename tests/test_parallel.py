"""The Python suite in parallel processes (tests/parallel.py): each xdist worker reads its own Redis database and
var directory, so one worker's cache.clear() or Celery workers never reach another's."""

import json
import os
import subprocess
import sys

from tests.conftest import ROOT
from tests.parallel import worker_redis_url

PROBE = """
import json, os
from pathlib import Path
from django.conf import settings

def test_probe():
    worker = os.environ["PYTEST_XDIST_WORKER"]
    Path({out!r}, worker + ".json").write_text(json.dumps({{
        "cache": settings.CACHES["default"]["LOCATION"],
        "broker": settings.CELERY_BROKER_URL,
        "var": str(settings.VAR_DIR),
    }}))

test_probe_again = test_probe
"""


def test_worker_n_uses_the_redis_database_n_below_the_suites():
    assert worker_redis_url("redis://127.0.0.1:6379/15", 0) == "redis://127.0.0.1:6379/15"
    assert worker_redis_url("redis://127.0.0.1:6379/15", 1) == "redis://127.0.0.1:6379/14"
    assert worker_redis_url("redis://:secret@cache.example:6380/2", 3) == "redis://:secret@cache.example:6380/15"
    assert worker_redis_url("redis://127.0.0.1:6379", 1) == "redis://127.0.0.1:6379/15"


def test_two_workers_read_their_own_redis_database_and_var_directory(tmp_path):
    (tmp_path / "test_probe.py").write_text(PROBE.format(out=str(tmp_path)))
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update(REDIS_URL="redis://127.0.0.1:6379/15", DJANGO_VAR_DIR=str(tmp_path / "var"))
    # --dist=each: both workers run the probe.
    options = ["-p", "tests.parallel", "-n", "2", "--dist=each", "-q", "-p", "no:cacheprovider"]
    config = ["--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml")]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *options, *config, str(tmp_path / "test_probe.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    seen = {path.stem: json.loads(path.read_text()) for path in tmp_path.glob("gw*.json")}
    redis = "redis://127.0.0.1:6379/"
    assert seen == {
        "gw0": {"cache": f"{redis}15", "broker": f"{redis}15", "var": f"{tmp_path}/var-gw0"},
        "gw1": {"cache": f"{redis}14", "broker": f"{redis}14", "var": f"{tmp_path}/var-gw1"},
    }

"""Per-worker services for a parallel run (pytest-xdist, ``make test-python``): loaded with ``-p tests.parallel``.

Each xdist worker (gw0, gw1, ...) is its own process with its own Django settings. pytest-django already gives
each one its own test database (``test_<name>_gw0``). The rest is shared unless told apart here, before the
settings are read: the Redis database (the cache, the locks and the Celery broker: one worker's
``cache.clear()`` would empty the other's, and its Celery workers would take the other's tasks) and the var
directory (the local MLflow store, media, the file broker). Worker N uses the Redis database N below the
suite's (15, 14, ... by default) and ``<DJANGO_VAR_DIR>-gwN``. Without xdist this plugin does nothing.
"""

import os
from urllib.parse import urlsplit, urlunsplit

import pytest

REDIS_DATABASES = 16  # Redis's default `databases`


def worker_redis_url(url: str, index: int) -> str:
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base - index) % REDIS_DATABASES}"))


# tryfirst: after pytest-env has set the suite's defaults (it registers later, so its tryfirst hook runs first),
# before pytest-django reads the settings (a plain hook).
@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    index = int(worker.removeprefix("gw"))
    if url := os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = worker_redis_url(url, index)
    if var_dir := os.environ.get("DJANGO_VAR_DIR"):
        os.environ["DJANGO_VAR_DIR"] = f"{var_dir.rstrip('/')}-{worker}"

"""The embedded MLflow store (a SQLite file, by default ``var/mlflow.db``): made whole in one step, or not at all.

MLflow builds a new SQLite store on first use by running some forty schema migrations (15-17 s on a busy
machine). A process stopped halfway (a doctor check's deadline, a killed request) left a file that every later
use fails on (``table latest_metrics already exists``). Here the store is built in a temporary file next to
it and renamed into place when complete, under a lock so that two processes never build it twice; ``migrate``
does it (a post_migrate handler, so ``make run`` has it before the first page), and so does the first use of
the MLflow client if migrate has not run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import uuid
from pathlib import Path

from django.conf import settings

MISSING, INCOMPLETE, READY = "missing", "incomplete", "ready"


def store_paths() -> list[Path]:
    """The SQLite files of our tracking and registry stores (none when both are servers or other databases)."""
    uris = {settings.MLFLOW_TRACKING_URI, settings.MLFLOW_REGISTRY_URI or settings.MLFLOW_TRACKING_URI}
    paths = []
    for uri in sorted(uris):
        if uri.startswith("sqlite:///") and uri.removeprefix("sqlite:///") not in ("", ":memory:"):
            paths.append(Path(uri.removeprefix("sqlite:///")))
    return paths


def is_default() -> bool:
    """Whether MLflow runs on the embedded default (MLFLOW_TRACKING_URI not set)."""
    return f"sqlite:///{Path(settings.VAR_DIR) / 'mlflow.db'}" == settings.MLFLOW_TRACKING_URI


def state(path: Path) -> str:
    """MISSING, INCOMPLETE (a creation that stopped halfway: no experiment recorded yet) or READY.

    A store is complete once MLflow has recorded its Default experiment, the last step of creating it; a file
    without that row holds no one's data, so ``ensure`` may set it aside and build the store again.
    """
    if not path.exists():
        return MISSING
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"experiments", "alembic_version", "registered_models"} <= tables:
                return INCOMPLETE
            if db.execute("SELECT count(*) FROM experiments").fetchone()[0] == 0:
                return INCOMPLETE
    except sqlite3.DatabaseError:
        return INCOMPLETE
    return READY


def _build(path: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    temporary = path.with_name(f".{path.name}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        # The tracking store creates every table (the registry's too) and the Default experiment.
        uri = f"sqlite:///{temporary}"
        store = SqlAlchemyStore(uri, settings.MLFLOW_ARTIFACT_ROOT)
        store.engine.dispose()
        # MLflow keeps one engine per URI for the life of the process; this one is done with.
        getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def ensure(*, repair: bool = False) -> list[Path]:
    """Build each local store that does not exist yet; with ``repair``, also one left incomplete (set aside as
    ``<name>.incomplete-<n>``). Returns the paths built. Concurrent callers wait for the one building."""
    built = []
    for path in store_paths():
        if path.exists() and not repair:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = state(path)
            if found == READY or (found == INCOMPLETE and not repair):
                continue
            if found == INCOMPLETE:
                n = 1
                while path.with_name(f"{path.name}.incomplete-{n}").exists():
                    n += 1
                os.replace(path, path.with_name(f"{path.name}.incomplete-{n}"))
            _build(path)
            built.append(path)
    return built


def create_on_migrate(sender, verbosity=1, stdout=None, **kwargs) -> None:
    """post_migrate: have the local store ready (and whole) before anyone uses it."""
    try:
        built = ensure(repair=True)
    except Exception as exc:
        # The database is migrated; a store that cannot be built is MLflow's problem, for doctor to explain.
        if stdout is not None:
            where = ", ".join(str(path) for path in store_paths())
            stdout.write(f"Could not create the local MLflow store at {where}: {exc}. Run manage.py doctor.\n")
        return
    if built and verbosity > 0 and stdout is not None:
        stdout.write(f"Created the local MLflow store at {', '.join(str(path) for path in built)}.\n")

"""The doctor's checks of what mlops owns: the MLflow stores and a champion model per sensor type in use.

Registered in ``MlopsConfig.ready()``; see ``smartmaint.doctor`` for the registry.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from mlops import local_store
from smartmaint.doctor import FAIL, OK, SKIP, CheckTimeout, Result, bounded, elapsed_ms, first_line, redact, within

# --- MLflow --------------------------------------------------------------------------------------


def _mlflow_is_local() -> bool:
    return not settings.MLFLOW_TRACKING_URI.startswith(("http://", "https://", "databricks"))


def _probe_mlflow() -> str:
    from mlops import registry

    start = time.perf_counter()
    client = registry.client()
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)
    return elapsed_ms(start)


def _local_remedy(exc: BaseException, timeout: float) -> str:
    """What to do about a local store that exists and is whole but does not open, by cause."""
    message = str(exc).lower()
    where = ", ".join(str(path) for path in local_store.store_paths())
    if isinstance(exc, CheckTimeout):
        return (
            f"The local store {where} did not answer within {timeout:g} s: another process may be writing to it "
            "(train_models), or the machine is very busy; retry later or with a longer --timeout."
        )
    if "out-of-date database schema" in message:
        return f"Take a backup of {where}, then run: mlflow db upgrade {settings.MLFLOW_TRACKING_URI}"
    if isinstance(exc, PermissionError) or any(
        text in message for text in ("readonly database", "unable to open database file", "permission denied")
    ):
        return f"Let this user read and write {where} and its directory (or point MLFLOW_TRACKING_URI elsewhere)."
    return (
        f"The local store {where} does not open: see the message (a damaged file can be moved aside, "
        "then manage.py migrate builds a new one)."
    )


def check_mlflow(connection: BaseDatabaseWrapper, timeout: float) -> Result:
    uri = redact(settings.MLFLOW_TRACKING_URI)
    local = _mlflow_is_local()
    # Loaded before the clock starts: the limit is for MLflow's answer, not for importing the library
    # (3.5-60 s on a busy machine).
    import mlflow.tracking  # noqa: F401

    paths = local_store.store_paths()
    if paths:
        default = " (the default, MLFLOW_TRACKING_URI is not set)" if local_store.is_default() else ""
        # Never built here: the doctor must not leave a half-made store behind when its deadline passes.
        for path in paths:
            found = within(timeout, local_store.state, path)
            if found == local_store.MISSING:
                return Result(
                    "mlflow",
                    FAIL,
                    f"local store {path}{default} is not created yet",
                    "Run manage.py migrate: it creates the local MLflow store (once, in about 15 s).",
                )
            if found == local_store.INCOMPLETE:
                return Result(
                    "mlflow",
                    FAIL,
                    f"local store {path}{default} is incomplete: its creation was cut off halfway",
                    "Run manage.py migrate: it moves the incomplete file aside and creates the store again.",
                )
    try:
        took = within(timeout, _probe_mlflow)
    except Exception as exc:
        remedy = (
            _local_remedy(exc, timeout)
            if paths
            else "Start the MLflow server or fix MLFLOW_TRACKING_URI (and MLFLOW_REGISTRY_URI)."
        )
        return Result("mlflow", FAIL, f"{uri}: {first_line(exc)}", remedy)
    if local:
        return Result("mlflow", OK, f"local store {uri} opens ({took})")
    return Result("mlflow", OK, f"{uri} answered in {took}")


def _sensor_types_in_use() -> list[str]:
    from sensors.choices import SensorStatus
    from sensors.models import Sensor

    # Only active sensors are scored, so only their types need a champion.
    return sorted(
        set(Sensor.objects.filter(status=SensorStatus.ACTIVE).values_list("sensor_type", flat=True).distinct())
    )


def _champions(sensor_types: list[str]) -> tuple[dict[str, str], list[str]]:
    from mlflow.exceptions import MlflowException

    from mlops import registry

    client = registry.client()
    found, missing = {}, []
    for sensor_type in sensor_types:
        try:
            version = client.get_model_version_by_alias(registry.model_name(sensor_type), registry.CHAMPION)
        except MlflowException as exc:
            # No registered model, or no champion alias on it.
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                missing.append(sensor_type)
                continue
            raise
        found[sensor_type] = str(version.version)
    return found, missing


def check_champions(connection: BaseDatabaseWrapper, timeout: float) -> Result:
    try:
        with bounded(connection, timeout):
            sensor_types = _sensor_types_in_use()
    except DatabaseError as exc:
        # No sensors table yet: the migration lines already say what to do.
        return Result("champion_models", SKIP, f"not checked: no sensor types ({first_line(exc)})")
    if not sensor_types:
        return Result("champion_models", SKIP, "no active sensors: no sensor type needs a model")
    try:
        found, missing = within(timeout, _champions, sensor_types)
    except Exception as exc:
        return Result(
            "champion_models",
            FAIL,
            f"{redact(settings.MLFLOW_TRACKING_URI)}: {first_line(exc)}",
            "Fix MLflow first (see the mlflow line).",
        )
    if missing:
        return Result(
            "champion_models",
            FAIL,
            f"no champion for {', '.join(missing)} ({len(missing)} of {len(sensor_types)} types with active sensors)",
            f"Run manage.py train_models --types {','.join(missing)} (a first version becomes champion).",
        )
    versions = ", ".join(f"{sensor_type} v{version}" for sensor_type, version in found.items())
    return Result("champion_models", OK, f"champion for every type with active sensors: {versions}")

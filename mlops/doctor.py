"""The doctor's checks of what mlops owns: the MLflow stores and a champion model per sensor type in use.

Registered in ``MlopsConfig.ready()``; see ``smartmaint.doctor`` for the registry.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from smartmaint.doctor import FAIL, OK, SKIP, Result, bounded, elapsed_ms, first_line, redact, within

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


def check_mlflow(connection: BaseDatabaseWrapper, timeout: float) -> Result:
    uri = redact(settings.MLFLOW_TRACKING_URI)
    local = _mlflow_is_local()
    try:
        took = within(timeout, _probe_mlflow)
    except Exception as exc:
        remedy = (
            "Check that the path of MLFLOW_TRACKING_URI is writable by this user."
            if local
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

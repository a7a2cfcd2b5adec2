"""The MLflow side: client, model names, and one error type for "MLflow cannot be reached"."""

from __future__ import annotations

import contextlib
import functools
import os

from django.conf import settings

from mlops import local_store

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)
# The version tag that says why training made a version champion or not ("promoted: F1 0.910 vs champion v3 0.850
# on 1,234 windows after ...", "kept champion v3: ..."), shown on the model's registry page in the admin.
PROMOTION_TAG = "promotion"


class MLflowUnavailable(Exception):
    """MLflow could not be reached or answered with an error; the message says which and why."""


def model_name(sensor_type: str) -> str:
    return f"{settings.MLFLOW_MODEL_PREFIX}-{sensor_type}"


def normal_model_name() -> str:
    """The registered model holding every asset's normal-behaviour model (see mlops.normal_training)."""
    return f"{settings.MLFLOW_MODEL_PREFIX}-normal"


# Which of the two timeout profiles the MLflow client uses in this process (see command_timeouts).
_command_profile = False


def _apply_http_limits() -> None:
    """Give MLflow's HTTP client our timeout and retries.

    MLflow reads these variables on every request (mlflow.utils.rest_utils), so setting them here, before each
    client is made, applies at once. They are ours, not the operator's: a MLFLOW_HTTP_REQUEST_* value in the
    environment is replaced by MLFLOW_REQUEST_* (web requests) or MLFLOW_COMMAND_REQUEST_* (management commands).
    """
    if _command_profile:
        timeout, retries = settings.MLFLOW_COMMAND_REQUEST_TIMEOUT, settings.MLFLOW_COMMAND_REQUEST_MAX_RETRIES
    else:
        timeout, retries = settings.MLFLOW_REQUEST_TIMEOUT, settings.MLFLOW_REQUEST_MAX_RETRIES
    # requests applies the timeout to the connect and to every read of the answer.
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, timeout))
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(max(0, retries))
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"


@contextlib.contextmanager
def command_timeouts():
    """MLflow calls made inside use the management commands' longer timeout and retries.

    A web request must give up within seconds (a worker held by a frozen MLflow is a worker lost to every other
    client); a batch job such as train_models would rather wait and retry than fail an hour of work.
    """
    global _command_profile
    previous, _command_profile = _command_profile, True
    _apply_http_limits()
    try:
        yield
    finally:
        _command_profile = previous
        _apply_http_limits()


def configure() -> None:
    """Point the MLflow client library at our tracking and registry stores."""
    _apply_http_limits()
    import mlflow  # imported on first use: it takes about a second

    mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
    mlflow.set_registry_uri(settings.MLFLOW_REGISTRY_URI or settings.MLFLOW_TRACKING_URI)
    # A local store MLflow would build in place (15-17 s, half-made if cut off) is built whole first.
    local_store.ensure()


def client():
    """An MlflowClient on our tracking and registry stores."""
    from mlflow.tracking import MlflowClient

    configure()
    return MlflowClient(
        tracking_uri=settings.MLFLOW_TRACKING_URI,
        registry_uri=settings.MLFLOW_REGISTRY_URI or settings.MLFLOW_TRACKING_URI,
    )


def experiment_id() -> str:
    """Our experiment, created on first use (with our artifact root where the store has no default)."""
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(settings.MLFLOW_EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    local_store = not settings.MLFLOW_TRACKING_URI.startswith(("http://", "https://", "databricks"))
    return mlflow_client.create_experiment(
        settings.MLFLOW_EXPERIMENT, artifact_location=settings.MLFLOW_ARTIFACT_ROOT if local_store else None
    )


def run_url(run_id: str, experiment: str) -> str | None:
    base = settings.MLFLOW_UI_URL.rstrip("/")
    return f"{base}/#/experiments/{experiment}/runs/{run_id}" if base else None


def translate_errors(function):
    """Turn MLflow's and the network's failures into MLflowUnavailable with a readable message."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except MLflowUnavailable:
            raise
        except (OSError, ConnectionError) as exc:
            raise MLflowUnavailable(f"MLflow at {settings.MLFLOW_TRACKING_URI} cannot be reached: {exc}") from exc
        except Exception as exc:
            from mlflow.exceptions import MlflowException

            if isinstance(exc, MlflowException):
                raise MLflowUnavailable(f"MLflow at {settings.MLFLOW_TRACKING_URI} answered: {exc.message}") from exc
            raise

    return wrapper

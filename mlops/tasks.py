"""The MLOps app's Celery tasks: thin wrappers around the services, scheduled by beat (see ``mlops.apps``).

Each is safe to run twice and at once: the services hold the locks and constraints (scoring watermarks and the
anomalies' unique key, alert rows claimed before they are mailed), not the tasks. Queues: settings.CELERY_TASK_ROUTES.
"""

from celery import shared_task
from django.conf import settings

from mlops import services
from mlops.registry import MLflowUnavailable
from mlops.runs import scoring_run, training_run
from smartmaint.celery import TRANSIENT_ERRORS, JobTask

# MLflow down or frozen is transient too; bad data (ValueError, IntegrityError, ...) never is.
MLOPS_TRANSIENT_ERRORS = (*TRANSIENT_ERRORS, MLflowUnavailable)


@shared_task(base=JobTask, name="mlops.readings_score_pending", autoretry_for=MLOPS_TRANSIENT_ERRORS)
def readings_score_pending() -> dict:
    """Score every active sensor's windows completed since its watermark, as ``manage.py score_readings`` does."""
    report = scoring_run()
    if report.unavailable:
        # The other types are scored and their watermarks moved: the retry does only what is left.
        raise next(iter(report.unavailable.values()))
    return report.summary()


@shared_task(base=JobTask, name="mlops.alerts_check_rules")
def alerts_check_rules() -> dict:
    """Open and resolve rule alerts (out of range, stale, offline) and mail the ones opened, as ``check_alerts``."""
    return services.alerts_check_rules()


@shared_task(base=JobTask, name="mlops.alerts_notify")
def alerts_notify() -> dict:
    """Mail open alerts not mailed yet; a send that failed earlier is retried here with its attempt counted."""
    return services.alerts_notify()


@shared_task(
    base=JobTask,
    name="mlops.models_retrain",
    autoretry_for=MLOPS_TRANSIENT_ERRORS,
    time_limit=settings.TRAINING_TIME_LIMIT,
    soft_time_limit=settings.TRAINING_TIME_LIMIT - 60,
)
def models_retrain(detector: str = "all") -> dict:
    """Train and register the detectors as ``manage.py train_models --detector DETECTOR`` does (promoted only when
    better than the champion)."""
    return training_run(detector=detector).summary()

"""The MLOps app's Celery tasks: thin wrappers around the services, scheduled by beat (see ``mlops.apps``).

Each is safe to run twice and at once: the services hold the locks and constraints (scoring watermarks and the
anomalies' unique key, alert rows claimed before they are mailed), not the tasks. Queues: settings.CELERY_TASK_ROUTES.

Scoring, rule alerts and mail are acknowledged late (``acks_late``), and put back on their queue should the worker
die under them (``reject_on_worker_lost``: killed, out of memory, its machine gone): another worker runs them again,
which is safe because they are idempotent. Retraining is not (hours of work; the next scheduled one follows).
"""

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from mlops import services
from mlops.features import WINDOW
from mlops.registry import MLflowUnavailable
from mlops.runs import scoring_run, training_run
from mlops.selectors import scoring_due
from smartmaint.celery import TRANSIENT_ERRORS, JobTask

# MLflow down or frozen is transient too; bad data (ValueError, IntegrityError, ...) never is.
MLOPS_TRANSIENT_ERRORS = (*TRANSIENT_ERRORS, MLflowUnavailable)


# Run again by another worker if the one running it dies: safe, see the module's docstring.
REDELIVERED = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(base=JobTask, name="mlops.readings_score_pending", autoretry_for=MLOPS_TRANSIENT_ERRORS, **REDELIVERED)
def readings_score_pending() -> dict:
    """Score every active sensor's windows completed since its watermark, as ``manage.py score_readings`` does."""
    cache.delete(SCORING_QUEUED)  # this run scores what came so far: ingest may queue the next one
    report = scoring_run()
    if report.unavailable:
        # The other types are scored and their watermarks moved: the retry does only what is left.
        raise next(iter(report.unavailable.values()))
    return report.summary()


@shared_task(base=JobTask, name="mlops.alerts_check_rules", **REDELIVERED)
def alerts_check_rules() -> dict:
    """Open and resolve rule alerts (out of range, stale, offline) and mail the ones opened, as ``check_alerts``."""
    return services.alerts_check_rules()


@shared_task(base=JobTask, name="mlops.alerts_notify", **REDELIVERED)
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


@shared_task(base=JobTask, name="mlops.scoring_runs_prune")
def scoring_runs_prune() -> dict:
    """Delete scoring runs logged more than SCORING_RUNS_KEEP_DAYS ago (task results: Celery's own cleanup)."""
    return services.scoring_runs_prune()


# --- Ingest side: readings scored soon after they arrive --------------------------------------------------------

INGESTED = "mlops:ingested"  # set while an ingest-side run is on its way (the debounce)
SCORING_QUEUED = "mlops:scoring-queued"  # set while a scoring run queued from ingest has not started


def scoring_soon_after_ingest(*, sensor_pks: list[int]) -> None:
    """After each ingest (registered with readings): one ``readings_ingested`` on the ingest queue within
    SCORING_AFTER_INGEST_SECONDS, however many batches arrive meanwhile (one cache key, shared by the web
    processes through Redis). Without it, a window completed by a reading waits for the next scheduled run."""
    delay = settings.SCORING_AFTER_INGEST_SECONDS
    # cache.add is false when the key is there, or when Redis is down: then the scheduled run scores the readings,
    # and a gateway's request never waits on a broker that is down.
    if delay > 0 and cache.add(INGESTED, 1, timeout=delay):
        readings_ingested.apply_async(countdown=delay, expires=delay + settings.JOBS_SCORING_SECONDS)


@shared_task(base=JobTask, name="mlops.readings_ingested")
def readings_ingested() -> dict:
    """Ingest side (the ingest queue): readings arrived in the last SCORING_AFTER_INGEST_SECONDS; when a window
    has completed since the last run (``mlops.selectors.scoring_due``, one query), put one scoring run on the
    scoring queue, unless one queued earlier has not started (it will score these too). The scoring itself runs
    on the scoring workers."""
    if not scoring_due(window=WINDOW):
        return {"queued": False, "due": False}  # no window completed since the last run: nothing to score yet
    if not cache.add(SCORING_QUEUED, 1, timeout=settings.CELERY_TASK_TIME_LIMIT):
        return {"queued": False, "due": True}
    readings_score_pending.apply_async(expires=settings.JOBS_SCORING_SECONDS)
    return {"queued": True, "due": True}

"""The MLOps tasks on real Celery workers (processes on the suite's Redis broker and test database): queues keep
kinds of work apart, transient errors retry and bad data fails for good with its error on record, and scheduled
runs that overlap do the work once."""

import time
from io import StringIO

import pytest
from django.core.management import call_command
from django_celery_results.models import TaskResult

from mlops.models import Alert, Anomaly
from mlops.tasks import alerts_check_rules, alerts_notify, models_retrain, readings_score_pending
from tests.factories import ReadingFactory, SensorFactory
from tests.mlops.test_alert_mail import subscribe
from tests.services import S3_ENV, free_port
from tests.smtp_servers import smtp_server
from tests.workers import TASK_TIMEOUT, celery_worker, purge_queues, worker_env, worker_log

pytestmark = pytest.mark.django_db(transaction=True)


def ran_on(results) -> dict[str, str]:
    return {result.id: TaskResult.objects.get(task_id=result.id).worker for result in results}


def test_two_workers_on_different_queues_each_take_only_their_queues_tasks(tmp_path):
    purge_queues()
    env = worker_env()
    with (
        celery_worker("scoring", env=env, log_dir=tmp_path) as scorer,
        celery_worker("mail,default", env=env, log_dir=tmp_path) as mailer,
    ):
        scoring = [readings_score_pending.delay() for _ in range(3)]
        other = [alerts_notify.delay() for _ in range(3)] + [alerts_check_rules.delay()]
        for result in scoring + other:
            result.get(timeout=TASK_TIMEOUT)
    assert set(ran_on(scoring).values()) == {scorer}
    assert set(ran_on(other).values()) == {mailer}
    assert TaskResult.objects.filter(status="SUCCESS").count() == 7


def test_mlflow_unreachable_is_retried_with_backoff_and_bad_data_fails_at_once_with_its_error(tmp_path):
    sensor = SensorFactory()
    ReadingFactory(sensor=sensor)
    purge_queues()
    # Nothing listens there: every MLflow call fails at once (MLflowUnavailable), a transient error.
    env = worker_env(
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}",
        MLFLOW_COMMAND_REQUEST_MAX_RETRIES="0",
        MLFLOW_COMMAND_REQUEST_TIMEOUT="2",
        TASK_RETRY_MAX="2",
        TASK_RETRY_BACKOFF="1",
    )
    with celery_worker("scoring,training", env=env, log_dir=tmp_path) as name:
        scoring = readings_score_pending.delay()
        with pytest.raises(Exception, match="MLflow") as unavailable:
            scoring.get(timeout=TASK_TIMEOUT)
        # No labelled faults and no readings to learn from: bad data, never retried.
        training = models_retrain.delay(detector="supervised")
        with pytest.raises(ValueError) as bad_data:
            training.get(timeout=TASK_TIMEOUT)
        log = worker_log(tmp_path, name)

    assert type(unavailable.value).__name__ == "MLflowUnavailable"
    assert log.count(f"Task mlops.readings_score_pending[{scoring.id}] retry") == 2, log
    assert f"Task mlops.models_retrain[{training.id}] retry" not in log
    # Both failed for good, each recorded with its error and traceback.
    for result, error in ((scoring, "MLflowUnavailable"), (training, "ValueError")):
        record = TaskResult.objects.get(task_id=result.id)
        assert record.status == "FAILURE" and error in record.traceback, record.traceback
    assert str(bad_data.value) in TaskResult.objects.get(task_id=training.id).result


def test_a_worker_scores_and_mails_each_alert_once_when_scheduled_runs_overlap(
    mlflow_settings, mlflow_url, s3_endpoint, tmp_path
):
    # 8 sensors on 2 assets, 500 readings each a minute apart up to now, with labelled faults; champions trained.
    call_command("seed_data", "--sensors", "8", "--readings", "4000", "--anomaly-rate", "0.03", stdout=StringIO())
    call_command("train_models", "--promote", stdout=StringIO())
    subscribe("tech")
    Anomaly.objects.all().delete()
    Alert.objects.all().delete()
    purge_queues()
    with smtp_server(delay=0.02) as inbox:
        env = worker_env(
            MLFLOW_TRACKING_URI=mlflow_url,
            MLFLOW_S3_ENDPOINT_URL=s3_endpoint,
            **S3_ENV,
            EMAIL_SMTP_HOST=inbox.host,
            EMAIL_SMTP_PORT=str(inbox.port),
            EMAIL_SMTP_USE_TLS="false",
            ALERT_DIGEST_THRESHOLD="100000",  # one mail per alert, to count them
        )
        with celery_worker("scoring,mail", env=env, log_dir=tmp_path, concurrency=2) as name:
            # Two scheduled scoring runs at once (a slow run and the next one), then two mail runs at once.
            scoring = [readings_score_pending.delay() for _ in range(2)]
            scored = [result.get(timeout=TASK_TIMEOUT) for result in scoring]
            mailing = [alerts_notify.delay() for _ in range(2)]
            mailed = [result.get(timeout=TASK_TIMEOUT) for result in mailing]
            again = readings_score_pending.delay().get(timeout=TASK_TIMEOUT)

    rows = list(Anomaly.objects.values_list("sensor_id", "start", "model_name", "model_version"))
    assert rows and len(set(rows)) == len(rows)
    assert max(summary["windows"] for summary in scored) > 0
    assert again["windows"] == 0 and again["anomalies"] == 0, "the watermarks left windows to score again"
    # Every alert mailed exactly once, by one of the runs, at its first attempt.
    alerts = list(Alert.objects.all())
    assert alerts, "the seeded faults opened no alert"
    assert len(inbox.recipients()) == len(alerts)
    assert len({received.message["Subject"] for received in inbox.messages}) == len(alerts)
    assert {(alert.notify_state, alert.notify_attempts) for alert in alerts} == {("sent", 1)}
    printed = sum(summary["mail"]["sent"] for summary in scored) + sum(summary["sent"] for summary in mailed)
    assert printed == len(alerts), "the runs' counts are not what was sent"
    assert set(ran_on(scoring + mailing).values()) == {name}
    print(f"overlapping runs scored {[summary['windows'] for summary in scored]} windows, {len(rows)} anomalies")


def test_ingest_queues_one_ingest_side_run_that_queues_one_scoring_run(settings, tmp_path):
    from datetime import timedelta

    from django.conf import settings as live
    from django.core.cache import cache
    from django.db import transaction
    from django.utils import timezone

    from mlops.tasks import INGESTED, SCORING_QUEUED
    from readings.services import readings_ingest
    from sensors.models import Sensor

    settings.SCORING_AFTER_INGEST_SECONDS = 2
    sensor = SensorFactory()
    cache.delete_many([INGESTED, SCORING_QUEUED])
    purge_queues()
    now = timezone.now()
    # Three batches from a gateway within the debounce: one ingest-side run.
    for seconds in (30, 20, 10):
        with transaction.atomic():
            readings_ingest(
                items=[
                    {"sensor_id": sensor.sensor_id, "time": (now - timedelta(seconds=seconds)).isoformat(), "value": 1}
                ],
                sensors=Sensor.objects.all(),
                now=now,
                max_future_skew=live.INGEST_MAX_FUTURE_SKEW,
            )
    with (
        celery_worker("ingest", env=worker_env(), log_dir=tmp_path) as ingest,
        celery_worker("scoring", env=worker_env(), log_dir=tmp_path) as scorer,
    ):
        deadline = timezone.now() + timedelta(seconds=TASK_TIMEOUT)
        while not TaskResult.objects.filter(task_name="mlops.readings_score_pending", status="SUCCESS").exists():
            assert timezone.now() < deadline, worker_log(tmp_path, ingest) + worker_log(tmp_path, scorer)
            time.sleep(0.5)
    ingested = TaskResult.objects.get(task_name="mlops.readings_ingested")
    assert ingested.status == "SUCCESS" and ingested.worker == ingest and '"queued": true' in ingested.result
    scoring = TaskResult.objects.get(task_name="mlops.readings_score_pending")
    assert scoring.worker == scorer
    # The scoring run that started let the next ingest queue another one.
    assert cache.get(SCORING_QUEUED) is None

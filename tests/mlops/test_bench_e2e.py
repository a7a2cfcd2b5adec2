"""The path of bench/e2e.py on a small fleet: readings continued through the API, the ingest queue, a scoring run
on a real worker, anomalies for injected faults, alerts mailed once to a real SMTP server, and the bench's own
figures (no timing asserted)."""

import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django_celery_results.models import TaskResult
from rest_framework.test import APIClient

from mlops.tasks import alerts_check_rules
from tests.services import S3_ENV
from tests.workers import TASK_TIMEOUT, celery_worker, purge_queues, worker_env, worker_log

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_e2e_bench_path_ingests_scores_alerts_and_mails_each_fault_once(
    mlflow_settings, mlflow_url, s3_endpoint, settings, tmp_path
):
    from aiosmtpd.controller import Controller
    from django.contrib.auth.models import User
    from django.core.cache import cache

    from bench.e2e import INTERVAL, SUBSCRIBER, Fleet, MailLog, measure
    from mlops.models import Alert, AlertSubscription
    from mlops.runs import scoring_run
    from mlops.scoring import clear_model_cache
    from mlops.tasks import INGESTED, SCORING_QUEUED
    from sensors.models import APIKey, Sensor
    from tests.services import free_port

    clear_model_cache()
    # 8 sensors with an hour of history 10 s apart, ending 5 minutes ago; every detector trained; history scored.
    history_end = datetime.fromtimestamp((int(time.time()) // INTERVAL - 30) * INTERVAL, tz=UTC)
    call_command(
        "seed_data", "--sensors", "8", "--readings", str(8 * 360), "--interval", str(INTERVAL),
        "--end", history_end.isoformat(), "--quiet",
    )  # fmt: skip
    call_command("train_models", "--promote", stdout=StringIO())
    scoring_run()
    Alert.objects.update(notify_state="sent")
    user = User.objects.create_user("oncall", email=SUBSCRIBER, is_staff=True)
    AlertSubscription.objects.create(user=user, min_severity="warning")
    sensors = list(Sensor.objects.order_by("pk"))
    # Two faults (a step, a flatline) from 2 minutes after the history's end; the readings since, up to now.
    fleet = Fleet(
        sensors=sensors, history_end=history_end, history_count=360, faults=2,
        fault_at=history_end + timedelta(minutes=2),
    )  # fmt: skip
    moments = [history_end + timedelta(seconds=INTERVAL * i) for i in range(1, 31)]

    mail = MailLog()
    smtp = Controller(mail, hostname="127.0.0.1", port=free_port())
    smtp.start()
    settings.SCORING_AFTER_INGEST_SECONDS = 1
    cache.delete_many([INGESTED, SCORING_QUEUED])
    purge_queues()
    env = worker_env(
        MLFLOW_TRACKING_URI=mlflow_url,
        MLFLOW_S3_ENDPOINT_URL=s3_endpoint,
        **S3_ENV,
        EMAIL_SMTP_HOST="127.0.0.1",
        EMAIL_SMTP_PORT=str(smtp.port),
        EMAIL_SMTP_USE_TLS="false",
    )
    live_start = datetime.now(UTC)
    try:
        with celery_worker("ingest,scoring,mail,default", env=env, log_dir=tmp_path) as name:
            _, key = APIKey.objects.create_key(name="gateway", scope="read_ingest")
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
            items = [
                {"sensor_id": fleet.ids[s.pk], "time": m.isoformat(), "value": fleet.value(s.pk, m)}
                for m in moments
                for s in sensors
            ]
            response = client.post("/api/v1/readings/ingest", {"readings": items}, format="json")
            assert response.status_code == 200 and response.json()["accepted"] == len(items), response.content
            arrivals = dict.fromkeys(fleet.faults, time.time())
            # The ingest queued one ingest-side run, which queued one scoring run (it mails the alerts it opens).
            deadline = time.monotonic() + TASK_TIMEOUT
            while not TaskResult.objects.filter(task_name="mlops.readings_score_pending", status="SUCCESS").exists():
                assert time.monotonic() < deadline, worker_log(tmp_path, name)
                time.sleep(0.5)
            runs = list(
                TaskResult.objects.filter(task_name__in=["mlops.readings_ingested", "mlops.readings_score_pending"])
            )
            assert sorted((run.task_name, run.status, run.worker) for run in runs) == [
                ("mlops.readings_ingested", "SUCCESS", name),
                ("mlops.readings_score_pending", "SUCCESS", name),
            ]
            # The rule alerts' job (the step leaves the normal range), mailing what it opens.
            alerts_check_rules.delay().get(timeout=TASK_TIMEOUT)
        # The final drain, as the bench does: every window past the grace.
        scoring_run(end=moments[-1] + timedelta(seconds=settings.SCORING_GRACE_SECONDS + 200))
    finally:
        smtp.stop()
        clear_model_cache()

    figures = measure(fleet, arrivals=arrivals, live_start=live_start, mail=mail)
    assert figures["detection"]["count"] >= 1, figures  # the step at least (70 % of the range)
    assert figures["unscored_readings"] == 0
    assert figures["duplicate_anomalies"] == 0 and figures["duplicate_mails"] == 0
    assert figures["alerts_opened"] >= 1 and figures["alerts_unmailed"] == 0, figures
    assert figures["mail"]["count"] == figures["alerts_opened"]
    # Each fault's own line: where it started in its window and when it was found (the report prints them).
    assert sorted(item["kind"] for item in figures["faults_each"]) == sorted(f["kind"] for f in fleet.faults.values())
    found = [item for item in figures["faults_each"] if item["seconds"] is not None]
    assert len(found) == figures["detection"]["count"]
    assert all(0 <= item["position"] < 10 and isinstance(item["early"], bool) for item in found)

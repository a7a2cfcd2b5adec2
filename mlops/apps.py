from django.apps import AppConfig


class MlopsConfig(AppConfig):
    name = "mlops"
    verbose_name = "Models and alerts"

    def ready(self):
        from mlops.selectors import (
            alerts_summary,
            anomaly_chart_marks,
            anomaly_chart_marks_many,
            dashboard_alerts,
            sensor_events,
        )
        from mlops.services import scoring_forget
        from readings.selectors import (
            register_alert_summary,
            register_alerts,
            register_chart_marks,
            register_sensor_events,
        )
        from readings.services import register_seed_reset

        # The console's dashboard and charts live in readings; this app adds
        # its alerts and anomalies to them without readings importing mlops.
        register_chart_marks(anomaly_chart_marks, many=anomaly_chart_marks_many)
        register_alerts(dashboard_alerts)
        register_alert_summary(alerts_summary)
        register_sensor_events(sensor_events)
        # seed_data --reset (in readings) also deletes what scoring derived from the seeded readings.
        register_seed_reset(scoring_forget)

        from django.db.models.signals import post_migrate

        from mlops import doctor as checks
        from mlops import local_store
        from smartmaint import doctor

        # migrate (and so make run) builds the embedded MLflow store before anyone uses it.
        post_migrate.connect(local_store.create_on_migrate, sender=self, dispatch_uid="mlops_local_mlflow_store")

        doctor.register(checks.check_mlflow, name="mlflow", order=70, unavailable="MLflow cannot be reached")
        doctor.register(checks.check_champions, name="champion_models", order=80, requires=["database", "mlflow"])

        from django.conf import settings

        from mlops.selectors import scoring_runs_flagged
        from smartmaint import jobs

        # The periodic jobs, created with these schedules by migrate; staff change them in the admin.
        jobs.register(
            name="Score readings",
            task="mlops.readings_score_pending",
            every=settings.JOBS_SCORING_SECONDS,
            description="Scores every active sensor's windows completed since its watermark (score_readings).",
            flags=scoring_runs_flagged,  # a run that scored 0 windows while readings were due
        )
        jobs.register(
            name="Alert rules",
            task="mlops.alerts_check_rules",
            every=settings.JOBS_ALERT_RULES_SECONDS,
            description="Opens and resolves out-of-range, stale and offline alerts and mails new ones (check_alerts).",
        )
        jobs.register(
            name="Alert mail",
            task="mlops.alerts_notify",
            every=settings.JOBS_ALERT_MAIL_SECONDS,
            description="Mails open alerts not mailed yet, retrying failed sends with their attempt counted.",
        )
        from mlops.tasks import scoring_soon_after_ingest
        from readings.services import register_after_ingest

        # Readings are scored soon after they arrive, not only on the next scheduled run (the ingest queue).
        register_after_ingest(scoring_soon_after_ingest)

        jobs.register(
            name="Prune scoring runs",
            task="mlops.scoring_runs_prune",
            crontab=settings.JOBS_PRUNE_CRONTAB,
            description="Deletes scoring runs logged more than SCORING_RUNS_KEEP_DAYS ago (watermarks stay).",
        )
        jobs.register(
            name="Retrain models",
            task="mlops.models_retrain",
            crontab=settings.JOBS_RETRAINING_CRONTAB,
            description="Trains the detectors and normal-behaviour models; promotes only better ones (train_models).",
        )

from django.apps import AppConfig, apps


class SmartmaintConfig(AppConfig):
    name = "smartmaint"
    verbose_name = "Smart Maintenance"

    def ready(self):
        from smartmaint import (
            checks,  # noqa: F401  (registers the checks)
            doctor,
            doctor_checks,
        )
        from smartmaint.migrations_table import use_project_migrations_table

        use_project_migrations_table()

        from django.db.models.signals import post_migrate

        from smartmaint import jobs

        # migrate (and so make run) creates the periodic jobs the apps registered, with their default schedules.
        # post_migrate is sent for apps with models: this one has none, django_celery_beat holds the jobs' table.
        post_migrate.connect(
            jobs.install_on_migrate,
            sender=apps.get_app_config("django_celery_beat"),
            dispatch_uid="smartmaint_install_jobs",
        )

        from readings.selectors import register_flags

        # The fleet dashboard (readings') flags failing or late jobs, as the doctor's jobs line does.
        register_flags(jobs.dashboard_job_flags)

        doctor.register(
            doctor_checks.check_database, name="database", order=10, unavailable="the database cannot be reached"
        )
        doctor.register(
            doctor_checks.check_migrations,
            name="migrations",
            order=30,
            requires=["database"],
            skip_names=[
                "migrations_table",
                "table_conflicts",
                "migrate_privileges",
                "unapplied_migrations",
                "ghost_migrations",
                "legacy_migrations_table",
            ],
        )
        doctor.register(doctor_checks.check_cache, name="redis", order=50)
        doctor.register(doctor_checks.check_s3, name="s3", order=60)
        doctor.register(doctor_checks.check_smtp, name="smtp", order=90)
        # The background side: a worker answers (and serves every queue), beat sends the jobs, none failing.
        doctor.register(doctor_checks.check_workers, name="workers", order=95, unavailable="no worker answers")
        doctor.register(doctor_checks.check_beat, name="beat", order=96, requires=["database", "migrations"])
        doctor.register(doctor_checks.check_jobs, name="jobs", order=97, requires=["database", "migrations"])

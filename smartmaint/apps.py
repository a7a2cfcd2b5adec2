from django.apps import AppConfig


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

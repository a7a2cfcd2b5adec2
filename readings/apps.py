from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _apply_timescale_policies(sender, using, **kwargs):
    from django.db import connections

    from readings.timescale import apply_policies

    apply_policies(connections[using])


class ReadingsConfig(AppConfig):
    name = "readings"

    def ready(self):
        # Policies follow settings, so they are re-applied after every migrate,
        # not only when the migration that created them first runs.
        post_migrate.connect(_apply_timescale_policies, sender=self, dispatch_uid="readings_timescale_policies")

        from readings import doctor as checks
        from smartmaint import doctor

        doctor.register(checks.check_timescaledb, name="timescaledb", order=20, requires=["database"])
        doctor.register(checks.check_reading_times, name="reading_times", order=40, requires=["database"])

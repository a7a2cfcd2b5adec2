from django.apps import AppConfig


class SensorsConfig(AppConfig):
    name = "sensors"
    verbose_name = "Fleet"

    def ready(self):
        from sensors.api import schema  # noqa: F401  (registers the API key scheme with drf-spectacular)

from django.apps import AppConfig


class SmartmaintConfig(AppConfig):
    name = "smartmaint"
    verbose_name = "Smart Maintenance"

    def ready(self):
        from smartmaint import checks  # noqa: F401  (registers the checks)
        from smartmaint.migrations_table import use_project_migrations_table

        use_project_migrations_table()

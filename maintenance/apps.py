from django.apps import AppConfig


class MaintenanceConfig(AppConfig):
    name = "maintenance"
    verbose_name = "Maintenance"

    def ready(self):
        from django.conf import settings

        from maintenance.admin_views import asset_maintenance_section
        from maintenance.selectors import alerts_held_open
        from mlops.services import register_resolution_hold
        from sensors.selectors import register_asset_section
        from smartmaint import jobs

        # An alert with an active work order stays open until the work order is done or cancelled, whatever the
        # alert rules see meanwhile; mlops asks this without importing maintenance.
        register_resolution_hold(alerts_held_open)
        # The asset page's "Maintenance" section: work orders, open alerts, figures (sensors imports no maintenance).
        register_asset_section(asset_maintenance_section)

        jobs.register(
            name="Overdue work orders",
            task="maintenance.work_orders_remind_overdue",
            every=settings.JOBS_OVERDUE_REMINDER_SECONDS,
            description="Mails the assignee of each work order past its due date, once per work order.",
        )

"""``manage.py check_alerts``: rule-based alerts (range, staleness) and mail for alerts not yet sent."""

from django.core.management.base import BaseCommand

from mlops.services import alerts_check_rules, alerts_notify


class Command(BaseCommand):
    help = (
        "Open alerts for sensors N readings in a row outside their normal range (ALERT_OUT_OF_RANGE_READINGS) "
        "and for stale or offline sensors, resolve those whose condition has cleared, and mail open alerts not "
        "mailed yet (retrying earlier failures). Run it every minute or so (cron, a scheduler, a sidecar)."
    )

    def handle(self, *args, **options):
        rules = alerts_check_rules()
        mail = alerts_notify()
        self.stdout.write(
            f"Alerts: {rules['opened']} opened, {rules['resolved']} resolved. "
            f"Mail: {mail['sent']} sent, {mail['failed']} failed (kept for retry)."
        )

"""``manage.py check_alerts``: rule-based alerts (range, staleness) and mail for alerts not yet sent."""

from django.core.management.base import BaseCommand

from mlops.services import alerts_check_rules, alerts_notify, mail_counts_add


class Command(BaseCommand):
    help = (
        "Open alerts for sensors N readings in a row outside their normal range (ALERT_OUT_OF_RANGE_READINGS) "
        "and for stale or offline sensors, resolve those whose condition has cleared, and mail open alerts not "
        "mailed yet (retrying earlier failures). Safe to run several at once: each alert is mailed by one run. "
        "Run it every minute or so (cron, a scheduler, a sidecar)."
    )

    def handle(self, *args, **options):
        rules = alerts_check_rules()
        # The alerts this run opened were mailed by alerts_check_rules; this mails what earlier runs left.
        mail = mail_counts_add(rules["mail"], alerts_notify())
        self.stdout.write(f"Alerts: {rules['opened']} opened, {rules['resolved']} resolved. {mail_summary(mail)}")


def mail_summary(mail: dict[str, int]) -> str:
    """What this run mailed, from alerts_notify's counts: every number is what happened, not what was hoped."""
    text = (
        f"Mail: {mail['sent']} sent ({mail['messages']} messages), {mail['failed']} failed, "
        f"{mail['pending']} pending (retried by the next run)"
    )
    if mail["sending"]:
        text += f", {mail['sending']} being sent by another run"
    return text + "."

"""``manage.py score_readings``: score readings with each sensor type's champion model."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from mlops import registry
from mlops.management.commands.check_alerts import mail_summary
from mlops.management.commands.train_models import _moment, add_sensor_arguments, chosen_sensors
from mlops.registry import MLflowUnavailable
from mlops.scoring import NoChampion
from mlops.services import WINDOW, alerts_notify, mail_counts_add, readings_score, readings_score_pending
from sensors.choices import SensorType


class Command(BaseCommand):
    help = (
        "Score readings with the champion model of each sensor type and store anomalies (and alerts for the "
        "strongest). Scheduled (no --from): every window of each sensor that is complete since the sensor's "
        "watermark (where its last run stopped; a sensor never scored starts SCORING_FIRST_RUN_HOURS back), up "
        "to now or --to; run it at any cadence, the anomalies are the same. With --from: the windows overlapping "
        "--from to --to (default now), on request, watermarks untouched."
    )

    def execute(self, *args, **options):
        # A batch job: MLflow calls may wait and retry longer than in a web request (see settings).
        with registry.command_timeouts():
            return super().execute(*args, **options)

    def add_arguments(self, parser):
        parser.add_argument("--types", default="", help="Comma-separated sensor types (default: all).")
        add_sensor_arguments(parser, "Score")
        parser.add_argument(
            "--from",
            dest="start",
            default=None,
            help="Score the windows from this time (ISO 8601) on request, instead of from each sensor's watermark.",
        )
        parser.add_argument(
            "--to",
            dest="end",
            default=None,
            help="Score windows complete by this time (ISO 8601; default now). Without --from, watermarks move.",
        )
        parser.add_argument("--window", type=int, default=WINDOW, help=f"Readings per window. Default {WINDOW}.")

    def handle(self, *args, **options):
        types = [t.strip() for t in options["types"].split(",") if t.strip()] or list(SensorType.values)
        unknown = sorted(set(types) - set(SensorType.values))
        if unknown:
            raise CommandError(f"Unknown sensor type(s): {', '.join(unknown)}.")
        if options["window"] < 3:
            raise CommandError("--window must be at least 3 readings.")
        end = _moment(options["end"], "--to") if options["end"] else timezone.now()
        start = _moment(options["start"], "--from") if options["start"] else None
        if start is not None and start >= end:
            raise CommandError("--from must be earlier than --to.")
        # Active sensors (of the --asset given, or all); sensors named with --sensor whatever their status.
        sensors = chosen_sensors(options["assets"], options["sensors"], active_only=True)
        failures, mails = 0, []
        for sensor_type in types:
            group = [sensor for sensor in sensors if sensor.sensor_type == sensor_type]
            if not group:
                continue
            try:
                if start is None:
                    result = readings_score_pending(sensors=group, now=end, window=options["window"])
                else:
                    result = readings_score(sensors=group, start=start, end=end, window=options["window"])
            except NoChampion as exc:
                self.stdout.write(self.style.WARNING(str(exc)))
                continue
            except MLflowUnavailable as exc:
                failures += 1
                self.stderr.write(self.style.ERROR(f"{sensor_type}: {exc}"))
                continue
            mails.append(result.mail)  # the alerts this run opened, mailed as it committed them
            self.stdout.write(
                f"{sensor_type}: {result.windows} windows scored with {result.model_name} v{result.model_version}, "
                f"{len(result.anomalies)} anomalies."
            )
        mails.append(alerts_notify())
        self.stdout.write(f"Alert {mail_summary(mail_counts_add(*mails))}")
        if failures:
            raise CommandError(f"MLflow could not be reached for {failures} sensor type(s); see above.")

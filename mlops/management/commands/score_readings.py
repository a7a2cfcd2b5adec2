"""``manage.py score_readings``: score readings with each sensor type's champion model."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from mlops.management.commands.check_alerts import mail_summary
from mlops.management.commands.train_models import _moment, add_sensor_arguments, chosen_sensors
from mlops.runs import scoring_run
from mlops.services import WINDOW
from sensors.choices import SensorType


class Command(BaseCommand):
    help = (
        "Score readings with the champion model of each sensor type and store anomalies (and alerts for the "
        "strongest). Scheduled (no --from): every window of each sensor that is complete since the sensor's "
        "watermark (where its last run stopped; a sensor never scored starts SCORING_FIRST_RUN_HOURS back), up "
        "to now or --to; run it at any cadence, the anomalies are the same. With --from: the windows overlapping "
        "--from to --to (default now), on request, watermarks untouched."
    )

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
        # The same run as the scheduled task's (mlops.tasks.readings_score_pending).
        report = scoring_run(sensors=sensors, types=types, start=start, end=end, window=options["window"])
        for sensor_type in types:
            if sensor_type in report.no_champion:
                self.stdout.write(self.style.WARNING(report.no_champion[sensor_type]))
            elif sensor_type in report.unavailable:
                self.stderr.write(self.style.ERROR(f"{sensor_type}: {report.unavailable[sensor_type]}"))
            elif sensor_type in report.scored:
                result = report.scored[sensor_type]
                busy = f" ({result.busy} sensors left to another run scoring them)" if result.busy else ""
                early = f", {result.early} flagged early (frozen value, window still open)" if result.early else ""
                if result.models:
                    self.stdout.write(
                        f"{sensor_type}: {result.windows} windows scored with {result.models}, "
                        f"{len(result.anomalies)} anomalies{early}.{busy}"
                    )
                else:
                    self.stdout.write(f"{sensor_type}: nothing scored{busy}.")
        self.stdout.write(f"Alert {mail_summary(report.mail)}")
        if report.unavailable:
            raise CommandError(f"MLflow could not be reached for {len(report.unavailable)} sensor type(s); see above.")

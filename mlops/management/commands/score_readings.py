"""``manage.py score_readings``: score readings with each sensor type's champion model."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max
from django.utils import timezone

from mlops import registry
from mlops.management.commands.train_models import _moment
from mlops.models import ScoringRun
from mlops.registry import MLflowUnavailable
from mlops.scoring import NoChampion
from mlops.services import WINDOW, alerts_notify, readings_score
from sensors.choices import SensorStatus, SensorType
from sensors.models import Sensor


class Command(BaseCommand):
    help = (
        "Score readings with the champion model of each sensor type and store anomalies (and alerts for the "
        "strongest). Default range: since the end of the last run of that type (or the last 24 hours) up to now."
    )

    def execute(self, *args, **options):
        # A batch job: MLflow calls may wait and retry longer than in a web request (see settings).
        with registry.command_timeouts():
            return super().execute(*args, **options)

    def add_arguments(self, parser):
        parser.add_argument("--types", default="", help="Comma-separated sensor types (default: all).")
        parser.add_argument("--from", dest="start", default=None, help="Score readings from (ISO 8601).")
        parser.add_argument("--to", dest="end", default=None, help="Score readings before (ISO 8601; default now).")
        parser.add_argument("--window", type=int, default=WINDOW, help=f"Readings per window. Default {WINDOW}.")

    def handle(self, *args, **options):
        types = [t.strip() for t in options["types"].split(",") if t.strip()] or list(SensorType.values)
        unknown = sorted(set(types) - set(SensorType.values))
        if unknown:
            raise CommandError(f"Unknown sensor type(s): {', '.join(unknown)}.")
        end = _moment(options["end"], "--to") if options["end"] else timezone.now()
        failures = 0
        for sensor_type in types:
            sensors = list(Sensor.objects.filter(sensor_type=sensor_type, status=SensorStatus.ACTIVE))
            if not sensors:
                continue
            if options["start"]:
                start = _moment(options["start"], "--from")
            else:
                last = ScoringRun.objects.filter(sensor_type=sensor_type).aggregate(last=Max("end"))["last"]
                start = last or end - timedelta(days=1)
            if start >= end:
                self.stdout.write(f"{sensor_type}: nothing new to score.")
                continue
            try:
                result = readings_score(sensors=sensors, start=start, end=end, window=options["window"])
            except NoChampion as exc:
                self.stdout.write(self.style.WARNING(str(exc)))
                continue
            except MLflowUnavailable as exc:
                failures += 1
                self.stderr.write(self.style.ERROR(f"{sensor_type}: {exc}"))
                continue
            self.stdout.write(
                f"{sensor_type}: {result.windows} windows scored with {result.model_name} v{result.model_version}, "
                f"{len(result.anomalies)} anomalies."
            )
        mail = alerts_notify()
        self.stdout.write(f"Alert mail: {mail['sent']} sent, {mail['failed']} failed (kept for retry).")
        if failures:
            raise CommandError(f"MLflow could not be reached for {failures} sensor type(s); see above.")

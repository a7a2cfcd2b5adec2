"""``manage.py delete_readings``: remove readings older than a time (by default the clock faults before
READINGS_MIN_TIME that ``manage.py doctor`` reports)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from readings.services import readings_before, readings_delete_before
from sensors.models import Sensor


class Command(BaseCommand):
    help = (
        "Delete the readings older than --before (default: READINGS_MIN_TIME, so the clock faults that ingest "
        "now refuses and that manage.py doctor counts). Without --yes, only says what would be deleted."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--before",
            default=None,
            help="ISO 8601 date-time with a UTC offset; readings strictly older are deleted. "
            "Default: READINGS_MIN_TIME.",
        )
        parser.add_argument(
            "--sensor",
            action="append",
            dest="sensors",
            metavar="SENSOR_ID",
            help="Only this sensor's readings (repeat for several). Default: every sensor.",
        )
        parser.add_argument("--yes", action="store_true", help="Delete; without it, nothing is changed.")

    def handle(self, *args, before, sensors, yes, **options):
        moment = settings.READINGS_MIN_TIME if before is None else parse_datetime(before)
        if moment is None or moment.tzinfo is None:
            raise CommandError(
                f"--before {before!r} is not an ISO 8601 date-time with a UTC offset, e.g. 2020-01-01T00:00:00Z."
            )
        if sensors:
            known = set(Sensor.objects.filter(sensor_id__in=sensors).values_list("sensor_id", flat=True))
            unknown = sorted(set(sensors) - known)
            if unknown:
                raise CommandError(f"Unknown sensor(s): {', '.join(unknown)}.")
        stray = readings_before(before=moment, sensor_ids=sensors)
        if not stray.count:
            self.stdout.write(f"No readings before {moment.isoformat()}: nothing to delete.")
            return
        where = ", ".join(stray.sensor_ids)
        if not yes:
            self.stdout.write(
                f"{stray.count} reading(s) before {moment.isoformat()} on {where}. Run again with --yes to delete them."
            )
            return
        deleted = readings_delete_before(before=moment, sensor_ids=stray.sensor_ids)
        self.stdout.write(self.style.SUCCESS(f"Deleted {deleted} reading(s) before {moment.isoformat()} on {where}."))

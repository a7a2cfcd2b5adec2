"""``manage.py inject_fault``: a fault drill, a holdout fault shape appended to a sensor whose readings stopped."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from readings.choices import HoldoutShape
from readings.holdout import SHAPE_LENGTHS
from readings.services import HOLDOUT_MARK, readings_holdout_append
from sensors.models import Sensor

TAIL = 120


class Command(BaseCommand):
    help = (
        "Append readings to a sensor after its latest one, continuing its normal behaviour (its readings of the "
        "same time of day on recent days, labelled faults left out), with a fault shape the seeded faults do not "
        "have laid on them from --lead readings on: a drill to see that the detectors flag it and alerts reach "
        "staff, or a check of what the models never saw (bench/holdout.py). Prints the fault's onset and end. "
        "The period is recorded in the sensor's metadata (holdout_faults), never as a fault label, so training "
        "does not learn it. Readings in the future are refused: use a test sensor, or one whose readings stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sensor", required=True, metavar="SENSOR_ID", help="The sensor's ID.")
        parser.add_argument(
            "--shape",
            required=True,
            choices=[*HoldoutShape.values, "none"],
            help="The fault shape: "
            + "; ".join(f"{shape.value}: {shape.label.lower()}" for shape in HoldoutShape)
            + "; none: normal readings only.",
        )
        parser.add_argument("--lead", type=int, default=60, help="Normal readings before the onset. Default 60.")
        parser.add_argument(
            "--readings",
            type=int,
            default=None,
            help=f"Readings appended in all. Default: the lead, the shape's length and {TAIL} more.",
        )
        parser.add_argument("--seed", type=int, default=0, help="Random seed of the shape (dither, spikes). Default 0.")
        parser.add_argument("--force", action="store_true", help="Allow it in production (DJANGO_DEBUG false).")

    def handle(self, *args, **options):
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "inject_fault writes synthetic readings and DJANGO_DEBUG is false (production). "
                "Add --force if you mean it."
            )
        sensor = Sensor.objects.filter(sensor_id=options["sensor"]).first()
        if sensor is None:
            raise CommandError(f"Unknown sensor ID {options['sensor']!r}.")
        shape = None if options["shape"] == "none" else options["shape"]
        readings = options["readings"] or options["lead"] + SHAPE_LENGTHS.get(shape, 0) + TAIL
        try:
            appended = readings_holdout_append(
                sensor=sensor, shape=shape, readings=readings, lead=options["lead"], seed=options["seed"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{sensor.sensor_id}: {appended.stored} readings from {appended.first.isoformat()} to "
            f"{appended.last.isoformat()}."
        )
        if shape is not None:
            crossing = f"; outside the normal range from {appended.crossing.isoformat()}" if appended.crossing else ""
            self.stdout.write(
                self.style.SUCCESS(
                    f"{HoldoutShape(shape).label} from {appended.onset.isoformat()} to {appended.end.isoformat()}"
                    f"{crossing} (recorded in the sensor's metadata under {HOLDOUT_MARK})."
                )
            )

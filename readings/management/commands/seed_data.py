"""``manage.py seed_data``: a realistic synthetic fleet with labelled faults, idempotent."""

import sys
import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from readings.services import SeedConflict, fleet_seed, fleet_seed_reset
from sensors.models import Sensor


def _end(value: str) -> datetime:
    if value == "now":
        return datetime.now(UTC)
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"--end {value!r} is not an ISO 8601 date-time (for example 2026-11-26T08:00:00Z) or 'now'.")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


MAX_SENSORS = 100_000


class Command(BaseCommand):
    help = (
        "Create a synthetic fleet: assets on a few sites and lines, sensors of every type, realistic readings "
        "(daily and shift cycles, noise, slowly degrading assets) and injected faults recorded as ground truth. "
        "Idempotent: a second run with the same arguments adds nothing; a rerun with another --seed, --interval "
        "or --anomaly-rate than the fleet was made with is refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sensors", type=int, default=20, help="Number of sensors (4 per asset). Default 20.")
        parser.add_argument(
            "--readings",
            type=int,
            default=20_000,
            help="Total readings, spread evenly over the sensors. Default 20000.",
        )
        parser.add_argument(
            "--interval",
            type=int,
            default=60,
            help="Seconds between two readings of a sensor. Default 60. "
            "Fixed for a seeded fleet (change it with --reset).",
        )
        parser.add_argument(
            "--end",
            type=str,
            default=None,
            help="Time of the last reading, ISO 8601 (UTC if no offset) or 'now'; floored to --interval. "
            "Default: the latest end seeded so far, or now for a first run. A later end adds the readings since "
            "(and labels only the faults among them).",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=20240601,
            help="Random seed; same seed, same data. Default 20240601. "
            "Fixed for a seeded fleet (change it with --reset).",
        )
        parser.add_argument(
            "--anomaly-rate",
            type=float,
            default=0.01,
            help="Share of readings inside injected faults, from 0 to 0.5. Default 0.01. Fixed for a seeded fleet "
            "(change it with --reset).",
        )
        parser.add_argument(
            "--batch-size", type=int, default=100_000, help="Readings written per COPY/transaction. Default 100000."
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete every seeded asset, sensor, reading and fault label first, with the anomalies, alerts "
            "and scoring markers derived from them; each kind is counted. Refused in production "
            "(DJANGO_DEBUG false) unless --force is given.",
        )
        parser.add_argument("--force", action="store_true", help="Allow --reset in production.")
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing when the database already has sensors (make run uses it to seed only on first start).",
        )
        parser.add_argument("--quiet", action="store_true", help="Print nothing but errors.")

    def handle(self, *args, **options):
        self._validate(options)
        end = _end(options["end"]) if options["end"] else None
        quiet = options["quiet"]
        if options["if_empty"] and Sensor.objects.exists():
            if not quiet:
                self.stdout.write("The database already has sensors; not seeding (--if-empty).")
            return

        if options["reset"]:
            if not settings.DEBUG and not options["force"]:
                raise CommandError(
                    "--reset deletes data and DJANGO_DEBUG is false (production). Add --force if you mean it."
                )
            reset = fleet_seed_reset()
            if not quiet:
                message = "Reset: deleted " + ", ".join(
                    f"{count} {model._meta.verbose_name if count == 1 else model._meta.verbose_name_plural}"
                    for model, count in reset.deleted.items()
                )
                if reset.revoked_keys:
                    message += f"; revoked {reset.revoked_keys} API key{'s' if reset.revoked_keys != 1 else ''}"
                    message += " limited to seeded assets only"
                self.stdout.write(self.style.WARNING(message + "."))

        bar = None
        if not quiet and sys.stdout.isatty() and self.stdout.isatty():
            from tqdm import tqdm

            bar = tqdm(total=options["readings"], unit=" readings", unit_scale=True, desc="Seeding", file=sys.stdout)
        started = time.perf_counter()
        try:
            report = fleet_seed(
                sensors=options["sensors"],
                readings=options["readings"],
                interval=options["interval"],
                end=end,
                seed=options["seed"],
                anomaly_rate=options["anomaly_rate"],
                batch_size=options["batch_size"],
                progress=bar.update if bar else None,
            )
        except SeedConflict as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if bar:
                bar.close()
        elapsed = time.perf_counter() - started

        if quiet:
            return
        self.stdout.write(
            f"Seeded up to {report.end:%Y-%m-%d %H:%M:%S} UTC in {elapsed:.1f} s. "
            f"Assets: {report.assets}; sensors: {report.sensors}; readings: {report.readings}; "
            f"fault labels: {report.faults}."
        )
        if report.readings.created == 0 and report.sensors.created == 0 and report.assets.created == 0:
            self.stdout.write(self.style.SUCCESS("Nothing to add: the fleet was already seeded with these arguments."))

    @staticmethod
    def _validate(options) -> None:
        problems = []
        if options["sensors"] < 1:
            problems.append("--sensors must be at least 1")
        if options["sensors"] > MAX_SENSORS:
            problems.append(f"--sensors must be at most {MAX_SENSORS}")
        if options["readings"] < 0:
            problems.append("--readings must not be negative")
        if options["interval"] < 1:
            problems.append("--interval must be at least 1 second")
        if not 0 <= options["anomaly_rate"] <= 0.5:
            problems.append("--anomaly-rate must be between 0 and 0.5")
        if options["batch_size"] < 1:
            problems.append("--batch-size must be at least 1")
        if problems:
            raise CommandError("; ".join(problems) + ".")

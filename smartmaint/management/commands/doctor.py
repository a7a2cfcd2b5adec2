"""``manage.py doctor``: check every dependency and print one line each, OK, FAIL (with a remedy) or SKIP."""

import json

from django.core.management.base import BaseCommand, CommandError

from smartmaint.doctor import DEFAULT_TIMEOUT, FAIL, OK, SKIP, run_checks


class Command(BaseCommand):
    help = (
        "Check every dependency: the database (latency, version), TimescaleDB and the readings hypertable's "
        "policies, the migrations table (unapplied, ghost and leftover records), tables migrate would create that "
        "exist already and the privileges it needs, Redis, the S3 bucket (put, get, "
        "delete of a probe object), MLflow and a champion model per sensor type, and the SMTP host. Prints one "
        "line per check, OK, FAIL with a remedy, or SKIP when the dependency is not configured; exits non-zero "
        "on any FAIL."
    )
    # The doctor must report on a broken configuration, not stop at Django's own checks.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--json",
            action="store_true",
            help='Print a JSON list of {"check", "status", "detail", "remedy"} instead of lines.',
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT,
            help=f"Seconds each check may take before it fails. Default {DEFAULT_TIMEOUT:g}.",
        )
        parser.add_argument("--database", default="default", help="Database alias to check. Default 'default'.")

    def handle(self, *args, **options):
        if options["timeout"] <= 0:
            raise CommandError("--timeout must be a positive number of seconds, e.g. --timeout 5.")
        results = run_checks(timeout=options["timeout"], using=options["database"])

        if options["json"]:
            self.stdout.write(json.dumps([result.as_dict() for result in results], indent=2))
        else:
            styles = {OK: self.style.SUCCESS, FAIL: self.style.ERROR, SKIP: self.style.WARNING}
            width = max(len(result.check) for result in results)
            for result in results:
                status = styles[result.status](f"{result.status:<4}")
                self.stdout.write(f"{status}  {result.check:<{width}}  {result.detail}")
                if result.remedy:
                    self.stdout.write(f"      {'':<{width}}  -> {result.remedy}")
            counts = {status: sum(result.status == status for result in results) for status in (OK, FAIL, SKIP)}
            self.stdout.write(f"{counts[OK]} OK, {counts[FAIL]} FAIL, {counts[SKIP]} SKIP")

        failed = [result.check for result in results if result.status == FAIL]
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}.", returncode=1)

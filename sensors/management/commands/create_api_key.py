"""``manage.py create_api_key``: provision a gateway's API key from the command line; the key is printed once."""

from datetime import UTC, datetime, time, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from sensors.choices import APIKeyScope
from sensors.models import Asset
from sensors.services import APIKeyInvalid, api_key_create


def _expiry(value: str) -> datetime:
    """A number of days from now, an ISO date (the key expires as that day starts, in UTC) or an ISO date-time."""
    if value.isdigit():
        days = int(value)
        if days < 1:
            raise CommandError("--expires in days must be at least 1.")
        return timezone.now() + timedelta(days=days)
    try:
        moment = parse_datetime(value)
        if moment is None and (day := parse_date(value)) is not None:
            moment = datetime.combine(day, time.min)
    except ValueError:  # well-formed but impossible, e.g. 2027-02-30
        moment = None
    if moment is None:
        raise CommandError(
            f"--expires {value!r} is neither a number of days (e.g. 365), an ISO date (e.g. 2027-01-31) "
            "nor an ISO date-time (e.g. 2027-01-31T12:00:00Z)."
        )
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Create an API key for a gateway or device and print it once (only its hash is stored). "
        "Limit it to a site and/or assets; both limits apply together."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="A name that says what the key is for, e.g. 'gateway north line 3'.")
        parser.add_argument(
            "--scope",
            choices=APIKeyScope.values,
            default=APIKeyScope.INGEST,
            help="ingest (default): send readings; read: read the fleet and readings; "
            "read_ingest: both, and start scoring. See docs/api.md, 'Authentication'.",
        )
        parser.add_argument("--site", default="", help="Only assets of this site. Default: every site.")
        parser.add_argument(
            "--asset",
            action="append",
            default=[],
            metavar="CODE",
            dest="assets",
            help="Only this asset (its code, e.g. PUMP-07); repeat for several. Default: every asset.",
        )
        parser.add_argument(
            "--expires",
            default=None,
            help="When the key stops working: a number of days from now (e.g. 365), an ISO date (the key expires "
            "as that day starts, UTC) or an ISO date-time. Default: never.",
        )

    def handle(self, *args, **options):
        expires = _expiry(options["expires"]) if options["expires"] else None
        site = options["site"].strip()
        try:
            key, secret = api_key_create(
                name=options["name"],
                scope=options["scope"],
                site=site,
                asset_codes=[code.strip() for code in options["assets"]],
                expires=expires,
            )
        except APIKeyInvalid as exc:
            raise CommandError(str(exc)) from exc

        assets = ", ".join(key.assets.order_by("code").values_list("code", flat=True)) or "every asset"
        self.stdout.write(
            self.style.SUCCESS(f"Created API key {key.name!r} (prefix {key.prefix}).")
            + f"\n  scope: {key.scope}\n  site: {key.site or 'every site'}\n  assets: {assets}"
            + f"\n  expires: {key.expiry_date.isoformat() if key.expiry_date else 'never'}"
        )
        if site and not Asset.objects.filter(site=site).exists():
            warning = f"  No asset is in site {site!r} yet: the key sees none until there is one."
            self.stdout.write(self.style.WARNING(warning))
        self.stdout.write(secret)
        self.stdout.write(
            self.style.WARNING(
                "This key is shown only once: only its hash is stored. Copy it now; send it as "
                "'Authorization: Api-Key <key>'. Revoke it in the admin under Fleet > API keys."
            )
        )

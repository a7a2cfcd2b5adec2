"""Create the first admin login if there is none, so a fresh install can be used at once; or give a lost
admin login a new password (--reset-password)."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from smartmaint.services import admin_password_reset


class Command(BaseCommand):
    help = (
        "Create a superuser when none exists. Username, password and e-mail come from "
        "DJANGO_ADMIN_USERNAME (default 'admin'), DJANGO_ADMIN_PASSWORD (default: generated and printed once) "
        "and DJANGO_ADMIN_EMAIL. Does nothing when a superuser already exists, unless --reset-password."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default=None, help="Login name (default: $DJANGO_ADMIN_USERNAME or 'admin').")
        parser.add_argument("--email", default=None, help="E-mail address (default: $DJANGO_ADMIN_EMAIL or empty).")
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="Give the existing superuser --username a new password (DJANGO_ADMIN_PASSWORD, or generated and "
            "printed once) and lift its sign-in lockout; its API sessions end. For a lost admin password.",
        )

    def handle(self, *args, **options):
        username = options["username"] or settings.BOOTSTRAP_ADMIN["username"]
        email = options["email"] or settings.BOOTSTRAP_ADMIN["email"]
        given_password = settings.BOOTSTRAP_ADMIN["password"]

        if options["reset_password"]:
            self.reset_password(username, given_password)
            return

        User = get_user_model()
        with transaction.atomic():
            if User.objects.filter(is_superuser=True).exists():
                self.stdout.write(
                    "An admin login already exists; nothing to do. Lost its password? "
                    "`manage.py ensure_admin --reset-password [--username NAME]`."
                )
                return
            if User.objects.filter(username=username).exists():
                raise CommandError(
                    f"A user named {username!r} exists but is not a superuser. Choose another name with "
                    "--username, or promote it with `manage.py createsuperuser`."
                )
            password = given_password or secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email=email, password=password)

        self.stdout.write(self.style.SUCCESS(f"Created admin login {username!r}."))
        if not given_password:
            # Printed once: it is stored only as a hash.
            self.stdout.write(self.style.WARNING(f"  username: {username}\n  password: {password}"))
            self.stdout.write("  Keep it now; it is not shown again. Change it in the admin under Users.")

    def reset_password(self, username: str, given_password: str) -> None:
        password = given_password or secrets.token_urlsafe(12)
        try:
            cleared = admin_password_reset(username=username, password=password)
        except LookupError:
            superusers = list(
                get_user_model()
                .objects.filter(is_superuser=True)
                .order_by("username")
                .values_list("username", flat=True)
            )
            raise CommandError(
                f"No superuser named {username!r} (superusers: {', '.join(superusers) or 'none'}). Name one with "
                "--username, or run ensure_admin without --reset-password to create one; for other users, "
                "`manage.py changepassword NAME`."
            ) from None
        self.stdout.write(self.style.SUCCESS(f"New password set for admin login {username!r}."))
        if cleared:
            self.stdout.write(f"  Sign-in lockout lifted ({cleared} counted failure record(s) cleared).")
        if not given_password:
            self.stdout.write(self.style.WARNING(f"  username: {username}\n  password: {password}"))
            self.stdout.write("  Keep it now; it is not shown again.")

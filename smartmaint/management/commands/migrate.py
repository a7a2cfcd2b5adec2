"""``migrate`` with the project's own migrations table, TimescaleDB modes and ghost detection."""

from django.conf import settings
from django.core.management import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrateCommand
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder
from django.test.utils import override_settings

from smartmaint.checks import GHOST_CHECK_ID
from smartmaint.db_backend.base import TimescaleDBUnavailable
from smartmaint.migrations_table import adopt_legacy_table, ghost_migrations, ghost_report


class Command(DjangoMigrateCommand):
    help = (
        DjangoMigrateCommand.help
        + " Adopts an existing django_migrations table into MIGRATIONS_TABLE, refuses to run while"
        " migrations recorded in the database are missing from the code (use --prune to remove them),"
        " and enables TimescaleDB according to the TIMESCALEDB setting."
    )

    def check(self, *args, **kwargs):
        # migrate reports ghosts itself, in one message, and --prune must be
        # able to remove them, so the ghost system check must not block it.
        silenced = [*settings.SILENCED_SYSTEM_CHECKS, GHOST_CHECK_ID]
        with override_settings(SILENCED_SYSTEM_CHECKS=silenced):
            return super().check(*args, **kwargs)

    def handle(self, *args, **options):
        connection = connections[options["database"]]
        verbose = options["verbosity"] > 0

        adopted = adopt_legacy_table(connection)
        if adopted is not None and verbose:
            table = MigrationRecorder.Migration._meta.db_table
            self.stdout.write(
                self.style.SUCCESS(f"Adopted {adopted} migration record(s) from django_migrations into {table}.")
            )

        if not options["prune"]:
            ghosts = ghost_migrations(connection)
            if ghosts:
                raise CommandError(ghost_report(ghosts))

        try:
            # Run here, before Django's own call, so a failure is one clean
            # line; the second call inside super().handle() is idempotent.
            connection.prepare_database()
        except TimescaleDBUnavailable as exc:
            raise CommandError(str(exc)) from exc
        reason = getattr(connection, "timescaledb_unavailable_reason", None)
        if reason and verbose:
            self.stdout.write(
                self.style.WARNING(f"TimescaleDB not in use ({reason}); building plain PostgreSQL tables.")
            )
        return super().handle(*args, **options)

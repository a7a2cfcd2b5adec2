"""``migrate`` with the project's own migrations table, TimescaleDB modes, ghost detection and a preflight."""

from django.apps import apps
from django.conf import settings
from django.core.management import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrateCommand
from django.db import connections
from django.db.migrations.exceptions import MigrationSchemaMissing
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.test.utils import override_settings

from smartmaint import preflight
from smartmaint.checks import GHOST_CHECK_ID
from smartmaint.db_backend.base import TimescaleDBUnavailable
from smartmaint.migrations_table import (
    adopt_legacy_table,
    adoption_report,
    ghost_migrations,
    ghost_report,
    plan_adoption,
    prune_ghosts,
)


class Command(DjangoMigrateCommand):
    help = (
        DjangoMigrateCommand.help
        + " Before touching the database, refuses (in one line, with the remedy) when a table it would create"
        " exists already or the role may not create tables. Adopts this project's records from an existing"
        " django_migrations table into MIGRATIONS_TABLE (never another application's), refuses to run while"
        " migrations recorded in the database are missing from the code (use --prune to remove them, also for"
        " apps that are no longer installed), and enables TimescaleDB according to the TIMESCALEDB setting."
    )

    def check(self, *args, **kwargs):
        # migrate reports ghosts itself, in one message, and --prune must be
        # able to remove them, so the ghost system check must not block it.
        silenced = [*settings.SILENCED_SYSTEM_CHECKS, GHOST_CHECK_ID]
        with override_settings(SILENCED_SYSTEM_CHECKS=silenced):
            return super().check(*args, **kwargs)

    def _preflight(self, connection, options) -> None:
        """Refuse before anything is written when migrate would fail halfway: our table names taken, no CREATE."""
        if options["plan"] or options["migration_name"]:
            # --plan writes nothing; an explicit target is the operator steering by hand.
            return
        # Counted over the whole plan even for one app: migrate applies the migrations it depends on too.
        adoption = plan_adoption(connection)
        pending = preflight.pending_migrations(connection, adoption)
        if not (options["fake"] or options["fake_initial"]):
            conflicts = preflight.table_conflicts(connection, adoption)
            if conflicts:
                raise CommandError(
                    f"Nothing was changed. {preflight.conflict_report(conflicts, connection)} "
                    f"{preflight.conflict_remedy()}"
                )
        problem = preflight.privilege_problem(connection, len(preflight.tables_created_by(pending, connection)))
        if problem:
            finding, remedy = problem
            raise CommandError(f"Nothing was changed: {finding}. {remedy}")

    def _prune_uninstalled(self, connection, app_label: str) -> bool:
        """--prune for an app Django's migrate does not know (removed, or without migrations); True if handled."""
        migrated = MigrationLoader(connection, ignore_no_migrations=True).migrated_apps
        if app_label in migrated:
            return False
        installed = app_label in {config.label for config in apps.get_app_configs()}
        pruned = prune_ghosts(connection, app_label)
        if not pruned and installed:
            return False  # Django's own message ("does not have migrations") says it best.
        if not pruned:
            raise CommandError(f"No installed app with label '{app_label}', and no migration records of it to prune.")
        if self.verbosity > 0:
            self.stdout.write("Pruning migrations:", self.style.MIGRATE_HEADING)
            for app, name in pruned:
                self.stdout.write(f"  Pruning {app}.{name}" + self.style.SUCCESS(" OK"))
        return True

    def handle(self, *args, **options):
        connection = connections[options["database"]]
        self.verbosity = options["verbosity"]
        verbose = self.verbosity > 0

        self._preflight(connection, options)

        adoption = adopt_legacy_table(connection)
        if adoption is not None and verbose:
            style = self.style.SUCCESS if adoption.adopt else self.style.WARNING
            self.stdout.write(style(adoption_report(adoption)))

        if options["prune"] and options["app_label"] and self._prune_uninstalled(connection, options["app_label"]):
            return None

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
        try:
            return super().handle(*args, **options)
        except MigrationSchemaMissing as exc:
            # Django names django_migrations whatever the table is called.
            cause = str(exc.__cause__ or exc).strip().splitlines()[0]
            table = MigrationRecorder.Migration._meta.db_table
            raise CommandError(f"Unable to create the {table} table (MIGRATIONS_TABLE): {cause}") from exc

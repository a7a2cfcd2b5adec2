"""The project's own migrations table: the switch, adoption of ``django_migrations``, ghost detection."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

LEGACY_TABLE = "django_migrations"


def use_project_migrations_table() -> None:
    """Point Django's migration recorder at ``settings.MIGRATIONS_TABLE``.

    The recorder's model is the one place every migration command, the test
    runner and the executor read the table name from, so this one assignment
    switches all of them.
    """
    MigrationRecorder.Migration._meta.db_table = settings.MIGRATIONS_TABLE


def adopt_legacy_table(connection: BaseDatabaseWrapper) -> int | None:
    """Carry the history of an existing ``django_migrations`` table over to ours.

    Runs only when our table is missing or empty, so nothing recorded under the
    new name is ever overwritten. Rows are copied in one transaction and the
    old table is dropped in the same one; returns how many were adopted, or
    None when there was nothing to adopt.
    """
    table = MigrationRecorder.Migration._meta.db_table
    if table == LEGACY_TABLE:
        return None
    existing = set(connection.introspection.table_names())
    if LEGACY_TABLE not in existing:
        return None
    recorder = MigrationRecorder(connection)
    qn = connection.ops.quote_name
    with transaction.atomic(using=connection.alias):
        if table in existing and recorder.migration_qs.exists():
            return None
        recorder.ensure_schema()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {qn(table)} (app, name, applied) "
                f"SELECT app, name, applied FROM {qn(LEGACY_TABLE)} ORDER BY id"
            )
            adopted = cursor.rowcount
            cursor.execute(f"DROP TABLE {qn(LEGACY_TABLE)}")
    return adopted


def ghost_migrations(connection: BaseDatabaseWrapper) -> list[tuple[str, str]]:
    """Migrations recorded as applied for an installed app whose code no longer has them.

    A migration replaced by a squashed one that is still on disk is not a ghost.
    """
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    replaced = {key for migration in loader.disk_migrations.values() for key in migration.replaces}
    return sorted(
        key
        for key in loader.applied_migrations
        if key[0] in loader.migrated_apps and key not in loader.disk_migrations and key not in replaced
    )


def ghost_report(ghosts: list[tuple[str, str]]) -> str:
    names = ", ".join(f"{app}.{name}" for app, name in ghosts)
    apps = sorted({app for app, _ in ghosts})
    prune = "; ".join(f"manage.py migrate {app} --prune" for app in apps)
    return (
        f"{len(ghosts)} migration(s) are recorded as applied in {MigrationRecorder.Migration._meta.db_table!r} "
        f"but do not exist in the code: {names}. If the code is older than the database, deploy the release "
        f"that contains them; if they were deleted or renamed on purpose, remove their records with: {prune}"
    )

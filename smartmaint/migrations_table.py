"""The project's own migrations table: the switch, adoption of ``django_migrations``, ghost detection."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import truncate_name
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ProjectState

LEGACY_TABLE = "django_migrations"


def use_project_migrations_table() -> None:
    """Point Django's migration recorder at ``settings.MIGRATIONS_TABLE``.

    The recorder's model is the one place every migration command, the test
    runner and the executor read the table name from, so this one assignment
    switches all of them.
    """
    MigrationRecorder.Migration._meta.db_table = settings.MIGRATIONS_TABLE


def project_apps() -> set[str]:
    """Labels of this project's own apps (top-level packages of the project, not Django's or third parties')."""
    base = Path(settings.BASE_DIR).resolve()
    return {config.label for config in apps.get_app_configs() if Path(config.path).resolve().parent == base}


def model_tables(state: ProjectState, app_label: str, connection: BaseDatabaseWrapper) -> list[str]:
    """The tables of ``app_label``'s concrete, managed models in ``state``, named as Django names them."""
    tables = []
    for (label, name), model in state.models.items():
        if label != app_label or not model.options.get("managed", True) or model.options.get("proxy"):
            continue
        tables.append(
            model.options.get("db_table") or truncate_name(f"{label}_{name}", connection.ops.max_name_length())
        )
    return sorted(tables)


@dataclass(frozen=True)
class Adoption:
    """What adopting ``django_migrations`` does: which records it copies, which it leaves and why, and the table."""

    adopt: list[tuple[str, str]] = field(default_factory=list)
    # App label -> why its records stay where they are.
    left: dict[str, str] = field(default_factory=dict)
    # True only when every record is adopted: a table that still holds anyone else's records is never dropped.
    drop: bool = False

    @property
    def adopted_apps(self) -> list[str]:
        return sorted({app for app, _ in self.adopt})

    @property
    def foreign(self) -> bool:
        """No record of this project's apps: another application's table, left alone."""
        return not self.adopt and not (set(self.left) & project_apps())

    def describe_left(self) -> str:
        return "; ".join(f"{app} ({why})" for app, why in sorted(self.left.items()))


def plan_adoption(connection: BaseDatabaseWrapper) -> Adoption | None:
    """What ``adopt_legacy_table`` would do now, changing nothing; None when there is nothing to adopt from.

    There is something to adopt from when ``django_migrations`` exists beside an
    empty or missing MIGRATIONS_TABLE. Only records of installed apps are taken
    (this project's and the Django and library apps it installs), an app's only
    when the tables its recorded migrations create are all in this database,
    and only when the table records at least one of this project's own apps:
    a ``django_migrations`` without any is another application's history.
    """
    table = MigrationRecorder.Migration._meta.db_table
    if table == LEGACY_TABLE:
        return None
    existing = set(connection.introspection.table_names(include_views=True))
    if LEGACY_TABLE not in existing:
        return None
    if table in existing and MigrationRecorder(connection).migration_qs.exists():
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app, name FROM {connection.ops.quote_name(LEGACY_TABLE)} ORDER BY id")
        rows = [(app, name) for app, name in cursor.fetchall()]
    by_app: dict[str, list[str]] = {}
    for app, name in rows:
        by_app.setdefault(app, []).append(name)
    installed = {config.label for config in apps.get_app_configs()}
    if not set(by_app) & project_apps():
        return Adoption(left=dict.fromkeys(by_app, "not this project's: another application's history"))

    loader = MigrationLoader(connection, ignore_no_migrations=True)
    adopt, left = [], {}
    for app, names in sorted(by_app.items()):
        if app not in installed:
            left[app] = "not installed here"
            continue
        nodes = [(app, name) for name in names if (app, name) in loader.graph.nodes]
        missing = []
        if nodes:
            state = loader.project_state(nodes, at_end=True)
            missing = [name for name in model_tables(state, app, connection) if name not in existing]
        if missing:
            left[app] = f"its tables are missing from this database: {', '.join(missing)}"
            continue
        adopt += [(app, name) for name in names]

    # An adopted migration whose dependency stays unadopted would be an inconsistent history: leave its app too
    # (its tables then show up as conflicts, which is what such a database is).
    changed = True
    while changed:
        changed = False
        adopted = set(adopt)
        for app in sorted({app for app, _ in adopt}):
            nodes = [key for key in adopt if key[0] == app and key in loader.graph.nodes]
            needs = {dep for key in nodes for dep in loader.graph.forwards_plan(key) if dep[0] != app}
            blocking = sorted({dep[0] for dep in needs if dep not in adopted})
            if blocking:
                left[app] = f"depends on {', '.join(blocking)}, whose records are not adopted"
                adopt = [key for key in adopt if key[0] != app]
                adopted = set(adopt)
                changed = True
    return Adoption(adopt=adopt, left=left, drop=not left)


def adopt_legacy_table(connection: BaseDatabaseWrapper) -> Adoption | None:
    """Carry this project's history over from an existing ``django_migrations`` table to ours (see plan_adoption).

    Runs only when our table is missing or empty, so nothing recorded under the
    new name is ever overwritten. The records are copied in one transaction; the
    old table is dropped in the same one only when every record in it was
    adopted. Returns what was done, or None when there was nothing to adopt from.
    """
    table = MigrationRecorder.Migration._meta.db_table
    qn = connection.ops.quote_name
    with transaction.atomic(using=connection.alias):
        adoption = plan_adoption(connection)
        if adoption is None or not adoption.adopt:
            return adoption
        MigrationRecorder(connection).ensure_schema()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {qn(table)} (app, name, applied) "
                f"SELECT app, name, applied FROM {qn(LEGACY_TABLE)} "
                f"WHERE app IN ({', '.join(['%s'] * len(adoption.adopted_apps))}) ORDER BY id",
                adoption.adopted_apps,
            )
            if adoption.drop:
                cursor.execute(f"DROP TABLE {qn(LEGACY_TABLE)}")
    return adoption


def adoption_report(adoption: Adoption) -> str:
    """What migrate did with ``django_migrations``, in one line (doctor's legacy line uses the same words)."""
    table = MigrationRecorder.Migration._meta.db_table
    if not adoption.adopt:
        if adoption.foreign:
            return (
                f"Left {LEGACY_TABLE} alone: it records none of this project's apps "
                f"(records of {', '.join(sorted(adoption.left))}: another application's)."
            )
        return f"Adopted nothing from {LEGACY_TABLE} and left it in place: {adoption.describe_left()}."
    done = f"Adopted {len(adoption.adopt)} migration record(s) from {LEGACY_TABLE} into {table}."
    if adoption.drop:
        return f"{done} It held nothing else: dropped {LEGACY_TABLE}."
    return (
        f"{done} Left {LEGACY_TABLE} in place, with all its records, because it also holds records that are not "
        f"ours to take: {adoption.describe_left()}."
    )


def ghost_migrations(connection: BaseDatabaseWrapper) -> list[tuple[str, str]]:
    """Migrations recorded as applied whose code is not here: removed from an installed app, or of an app that
    has no migrations or is not installed at all (a removed app's records are ghosts too).

    A migration replaced by a squashed one that is still on disk is not a ghost.
    """
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    replaced = {key for migration in loader.disk_migrations.values() for key in migration.replaces}
    return sorted(key for key in loader.applied_migrations if key not in loader.disk_migrations and key not in replaced)


def prune_ghosts(connection: BaseDatabaseWrapper, app_label: str) -> list[tuple[str, str]]:
    """Remove the ghost records of ``app_label``; returns them.

    Django's ``migrate --prune`` accepts only installed apps with migrations, so
    the records of a removed app (or one whose migrations were deleted) could not
    be pruned the way the ghost report says.
    """
    ghosts = [key for key in ghost_migrations(connection) if key[0] == app_label]
    recorder = MigrationRecorder(connection)
    for app, name in ghosts:
        recorder.record_unapplied(app, name)
    return ghosts


def ghost_report(ghosts: list[tuple[str, str]]) -> str:
    names = ", ".join(f"{app}.{name}" for app, name in ghosts)
    apps = sorted({app for app, _ in ghosts})
    prune = "; ".join(f"manage.py migrate {app} --prune" for app in apps)
    return (
        f"{len(ghosts)} migration(s) are recorded as applied in {MigrationRecorder.Migration._meta.db_table!r} "
        f"but do not exist in the code: {names}. If the code is older than the database, deploy the release "
        f"that contains them; if they were deleted or renamed on purpose, remove their records with: {prune}"
    )

"""What ``migrate`` needs from the database before it touches it: no table of ours taken already, and the privileges.

``migrate`` refuses with one line when either is missing, and ``doctor`` reports the same findings with the
same remedy, so an operator meets the problem before the migration that would have failed halfway.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import truncate_name
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import CreateModel
from django.db.migrations.recorder import MigrationRecorder

from smartmaint.migrations_table import Adoption


def pending_migrations(connection: BaseDatabaseWrapper, adoption: Adoption | None = None) -> list:
    """The migrations ``migrate`` would apply, in order, counting the records it is about to adopt as applied."""
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    applied = set(loader.applied_migrations) | set(adoption.adopt if adoption else ())
    plan, seen = [], set()
    for leaf in loader.graph.leaf_nodes():
        for key in loader.graph.forwards_plan(leaf):
            if key in seen or key in applied:
                continue
            seen.add(key)
            migration = loader.graph.nodes[key]
            if migration.replaces and all(replaced in applied for replaced in migration.replaces):
                continue
            plan.append(migration)
    return plan


def tables_created_by(migrations: list, connection: BaseDatabaseWrapper) -> dict[str, str]:
    """Table name -> ``app.migration`` for every table (and many-to-many table) these migrations create."""
    max_length = connection.ops.max_name_length()
    created = {}
    for migration in migrations:
        for operation in migration.operations:
            if not isinstance(operation, CreateModel):
                continue
            options = operation.options
            if not options.get("managed", True) or options.get("proxy"):
                continue
            table = options.get("db_table") or truncate_name(
                f"{migration.app_label}_{operation.name_lower}", max_length
            )
            where = f"{migration.app_label}.{migration.name}"
            created[table] = where
            for name, field in operation.fields:
                remote = getattr(field, "remote_field", None)
                if field.many_to_many and remote is not None and remote.through is None:
                    created[field.db_table or truncate_name(f"{table}_{name}", max_length)] = where
    return created


def existing_tables(connection: BaseDatabaseWrapper) -> set[str]:
    """Tables, views and materialized views visible to this connection (its schema search path)."""
    return set(connection.introspection.table_names(include_views=True))


def table_conflicts(connection: BaseDatabaseWrapper, adoption: Adoption | None = None) -> dict[str, str]:
    """Tables ``migrate`` would create that exist already (table -> the migration that creates it).

    Such a table belongs to something else (a system this one replaces, another
    application, a table made by hand) or to an earlier install whose migration
    history is lost; either way migrate must not build over it.
    """
    created = tables_created_by(pending_migrations(connection, adoption), connection)
    existing = existing_tables(connection)
    return {table: where for table, where in sorted(created.items()) if table in existing}


def conflict_report(conflicts: dict[str, str], connection: BaseDatabaseWrapper) -> str:
    shown = ", ".join(f"{table} ({where})" for table, where in conflicts.items())
    return (
        f"{len(conflicts)} table(s) that migrate would create already exist in database "
        f"{connection.settings_dict['NAME']!r}, made by something other than this project's migrations "
        f"(a system this one replaces, another application, or by hand): {shown}."
    )


def conflict_remedy() -> str:
    return (
        "Give this application a database (or schema, via the search_path) of its own, or rename or drop those "
        "tables once you have kept what you need from them; if they are this application's own tables from a "
        "database whose history was lost, record it with manage.py migrate --fake-initial."
    )


@dataclass(frozen=True)
class Privileges:
    user: str
    database: str
    schema: str | None
    may_create_tables: bool


def privileges(connection: BaseDatabaseWrapper) -> Privileges | None:
    """The role's privileges that migrate needs on PostgreSQL; None on other databases."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, current_database(), current_schema(), "
            "current_schema() IS NOT NULL AND has_schema_privilege(current_schema(), 'CREATE')"
        )
        user, database, schema, may_create = cursor.fetchone()
    return Privileges(user=user, database=database, schema=schema, may_create_tables=bool(may_create))


def privilege_problem(connection: BaseDatabaseWrapper, tables_to_create: int) -> tuple[str, str] | None:
    """(finding, remedy) when migrate needs to create tables here and the role may not; else None."""
    granted = privileges(connection)
    if granted is None:
        return None
    table = MigrationRecorder.Migration._meta.db_table
    if table not in existing_tables(connection):
        tables_to_create += 1
    if not tables_to_create or granted.may_create_tables:
        return None
    if granted.schema is None:
        return (
            f"role {granted.user} has no schema to create tables in: no schema of its search_path exists "
            f"in database {granted.database}",
            f"Create a schema the role may use (CREATE SCHEMA ... AUTHORIZATION {granted.user};) or fix the "
            "search_path in DATABASE_URL's options.",
        )
    return (
        f"role {granted.user} may not create tables in schema {granted.schema} of database {granted.database} "
        f"({tables_to_create} table(s) to create, {table} among them); PostgreSQL 15 and later let only the "
        "database owner create in schema public",
        f"As the database owner or a superuser: GRANT CREATE ON SCHEMA {granted.schema} TO {granted.user}; "
        "(or make the role the database's owner), then run manage.py migrate.",
    )


def extension_problem(connection: BaseDatabaseWrapper, extension: str) -> tuple[str, str] | None:
    """(finding, remedy) when ``extension`` is available on the server, not installed, and this role may not
    create it; None when it is installed, cannot be installed at all, or may be created."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.rolsuper, has_database_privilege(current_database(), 'CREATE'), "
            "coalesce(has_schema_privilege(current_schema(), 'CREATE'), false), v.trusted, v.superuser, "
            "current_user, current_database() "
            "FROM pg_roles r, pg_available_extensions a "
            "JOIN pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version "
            "WHERE r.rolname = current_user AND a.name = %s AND a.installed_version IS NULL",
            [extension],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    superuser, database_create, schema_create, trusted, needs_superuser, user, database = row
    if superuser or (trusted and database_create) or (not needs_superuser and schema_create):
        return None
    if trusted:
        remedy = (
            f"As the database owner or a superuser: GRANT CREATE ON DATABASE {database} TO {user}; "
            f"(or CREATE EXTENSION {extension}; as a superuser in database {database})"
        )
    else:
        remedy = f"As a superuser: CREATE EXTENSION {extension}; in database {database}"
    return f"role {user} may not create the {extension} extension in database {database}", remedy

"""System checks an operator can act on."""

from __future__ import annotations

from django.core.checks import Error, Tags, register
from django.db import DatabaseError, connections

from smartmaint.migrations_table import ghost_migrations, ghost_report

GHOST_CHECK_ID = "smartmaint.E001"


@register(Tags.database)
def check_ghost_migrations(app_configs, databases=None, **kwargs):
    errors = []
    for alias in databases or []:
        try:
            ghosts = ghost_migrations(connections[alias])
        except DatabaseError:
            # Unreachable or empty databases are reported by other checks and by migrate.
            continue
        if ghosts:
            errors.append(
                Error(
                    f"Database {alias!r}: {ghost_report(ghosts)}",
                    hint="See docs/operations.md, 'Ghost migrations'.",
                    id=GHOST_CHECK_ID,
                )
            )
    return errors

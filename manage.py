#!/usr/bin/env python
"""Django's command-line utility for Smart Maintenance."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartmaint.settings")
    # Operators' commands (migrate, seed_data, train_models) run longer than any web request: no statement
    # timeout unless the environment asks for one (the web tier keeps the settings' default).
    os.environ.setdefault("DATABASE_STATEMENT_TIMEOUT", "0")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from smartmaint.database_errors import DATABASE_ERRORS, explain

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A configuration mistake is the operator's to fix: one line, no traceback.
        sys.exit(f"Configuration error: {exc}")
    except DATABASE_ERRORS as exc:
        # A database that cannot be reached or refuses us, from any command: one line with the cause and the
        # remedy. Errors that are bugs (explain() gives None) and --traceback keep the traceback.
        message = None if "--traceback" in sys.argv else explain(exc)
        if message is None:
            raise
        sys.exit(message)


if __name__ == "__main__":
    main()

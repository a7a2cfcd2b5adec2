"""Models and migrations agree (`makemigrations --check`)."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration():
    # Exits non-zero (SystemExit) when a migration would be created.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)

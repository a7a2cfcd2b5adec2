"""smartmaint.wsgi freezes what a process loads once out of the garbage collector's generations."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_wsgi_module_freezes_what_it_loaded():
    script = (
        "import gc, sys\n"
        "import smartmaint.wsgi\n"
        "print(gc.get_freeze_count(), 'smartmaint.urls' in sys.modules, 'maintenance.admin' in sys.modules)\n"
    )
    env = {**os.environ, "DJANGO_DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    frozen, urls, admins = result.stdout.split()[-3:]
    # The whole of Django and the apps, URLconf and admin classes included: well over 10,000 objects.
    assert int(frozen) > 10_000 and urls == admins == "True"

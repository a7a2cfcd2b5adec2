"""The worker and beat containers' health check (docker-compose.yml); exit 0 when healthy.

``worker``: this container's worker (``celery@<hostname>``) answers a ping within WORKER_PING_TIMEOUT seconds.
``beat``: beat sent a job within the last BEAT_STALE_SECONDS.
"""

import os
import socket
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the app (/app), run as a script from docker/


def main(role: str) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartmaint.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.utils import timezone

    from smartmaint import jobs

    if role == "worker":
        name = f"celery@{socket.gethostname()}"
        if jobs.workers_answering(timeout=settings.WORKER_PING_TIMEOUT, destination=[name]):
            return 0
        print(f"healthcheck: {name} did not answer a ping within {settings.WORKER_PING_TIMEOUT} s", file=sys.stderr)
        return 1
    last = jobs.beat_last_sent()
    if last is not None and timezone.now() - last < timedelta(seconds=settings.BEAT_STALE_SECONDS):
        return 0
    print(f"healthcheck: beat has sent no job since {last or 'ever'}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("worker", "beat"):
        sys.exit("usage: celery_healthcheck.py worker|beat")
    sys.exit(main(sys.argv[1]))

"""The web image's HEALTHCHECK: GET /healthz on the local gunicorn, exit 0 when it answers 200.

The health URLs answer any Host header (smartmaint.health.HealthCheckMiddleware); the probe still
sends the first allowed host name, so it exercises the app as a real client would.
"""

import http.client
import os
import sys


def probe_host() -> str:
    for entry in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(","):
        host = entry.strip()
        if host and host != "*":
            return host.lstrip(".")  # ".example.com" allows example.com and its subdomains
    return "localhost"  # debug mode's defaults allow it; so does "*"


def main() -> int:
    port = int(os.environ.get("PORT") or 8000)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=4)
    try:
        connection.request("GET", "/healthz", headers={"Host": probe_host()})
        status = connection.getresponse().status
    except OSError as exc:
        print(f"healthcheck: 127.0.0.1:{port}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: /healthz answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

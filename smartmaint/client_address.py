"""The client's address, as the trusted proxies in front of the app report it (throttles, sign-in lockouts)."""

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """``REMOTE_ADDR``, or behind ``TRUSTED_PROXY_COUNT`` proxies the address the outermost one saw.

    Each proxy appends the address it received the request from to ``X-Forwarded-For``, so with N trusted
    proxies the client is the N-th address from the right; whatever stands further left was written by the
    client itself and is ignored. Without trusted proxies the header is ignored entirely: anyone can send one.
    The same rule as Django REST framework's ``NUM_PROXIES``, which is set to the same value.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if not forwarded:
        return remote
    # Fewer entries than proxies: the request skipped a proxy; the left-most is then the best there is.
    return forwarded[-min(count, len(forwarded))]

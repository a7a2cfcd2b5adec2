"""Rate limits per user and per API key, counted in the shared cache (Redis in production)."""

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from smartmaint.client_address import client_address


class ClientRateThrottle(SimpleRateThrottle):
    """One budget per API key (rate "key") or per user (rate "user"); anonymous requests by address."""

    scope = "user"
    cache_format = "throttle_%(scope)s_%(ident)s"

    def allow_request(self, request, view):
        self.scope = "key" if self._key_prefix(request) else "user"
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_rate(self):
        # Read at request time, not import time, so settings changes apply.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_ident(self, request) -> str:
        # X-Forwarded-For counts only as far as TRUSTED_PROXY_COUNT proxies wrote it: a spoofed header from a
        # direct client must not buy it a fresh budget (the JWT endpoint's per-address limit).
        return client_address(request)

    @staticmethod
    def _key_prefix(request) -> str | None:
        return getattr(request.auth, "prefix", None)

    def get_cache_key(self, request, view):
        key = self._key_prefix(request)
        if key:
            ident = f"key:{key}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"addr:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

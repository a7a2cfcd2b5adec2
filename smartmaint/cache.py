"""The Redis cache, failing open: while Redis is down or frozen, the app runs from the database.

Everything the cache holds here can be recomputed (latest readings, counts) or lost without harm (throttle
counters), so a cache outage must cost neither a 500 nor a request's time. django-redis ignores errors when
asked to (``IGNORE_EXCEPTIONS``); on top of that, a circuit breaker skips Redis for ``CACHE_RETRY_SECONDS``
after a failure, so a frozen server costs one socket timeout per process and interval, not one per cache call.
The outage and the recovery are each logged once per process, not per request. ``/readyz`` and
``manage.py doctor`` probe Redis for real and keep reporting it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field

from django_redis.cache import RedisCache
from django_redis.client import DefaultClient
from django_redis.compressors.identity import IdentityCompressor
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError

logger = logging.getLogger("smartmaint.cache")


class CircuitOpen(RedisConnectionError):
    """Redis is skipped for now after a failure (not a new failure)."""


@dataclass
class Breaker:
    """One per Redis server and process (Django's caches are per thread; an outage is not)."""

    retry_seconds: float
    open_until: float = 0.0
    down: bool = False
    probing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self) -> bool:
        """Whether to try Redis now; notices a recovery (a probe that no failure followed)."""
        now = time.monotonic()
        with self.lock:
            if not self.down:
                return True
            if now < self.open_until:
                return False
            if self.probing:  # the last probe came back without a failure: Redis answers again
                self.down = self.probing = False
                logger.warning("Cache (Redis) available again.")
                return True
            self.probing = True
            return True

    def failed(self, exc: BaseException | None) -> None:
        with self.lock:
            first = not self.down
            self.down, self.probing = True, False
            self.open_until = time.monotonic() + self.retry_seconds
        if first:
            logger.error(
                "Cache (Redis) unavailable, running without it (throttling off, data from the database); "
                "retrying every %g s: %s",
                self.retry_seconds,
                exc,
            )


_breakers: dict[str, Breaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(location: str, retry_seconds: float) -> Breaker:
    with _breakers_lock:
        return _breakers.setdefault(location, Breaker(retry_seconds=retry_seconds))


class _OutageLog:
    """Stands in for django-redis's logger of ignored errors: each error trips the breaker instead of a log line."""

    def __init__(self, breaker: Breaker):
        self.breaker = breaker

    def exception(self, msg, *args, **kwargs):
        error = sys.exc_info()[1]
        if isinstance(getattr(error, "__cause__", None), CircuitOpen):
            return  # the breaker's own refusal: Redis was not asked, so this is no new failure
        self.breaker.failed(error)


class FailOpenClient(DefaultClient):
    """django-redis's client, refusing at once while the breaker is open (omitted by the cache like any error)."""

    def get_client(self, write: bool = True, tried=None):
        if not self._backend.breaker.allow():
            raise ConnectionInterrupted(connection=None) from CircuitOpen("circuit open")
        return super().get_client(write=write, tried=tried)

    def get_client_with_index(self, write: bool = True, tried=None):
        if not self._backend.breaker.allow():
            raise ConnectionInterrupted(connection=None) from CircuitOpen("circuit open")
        return super().get_client_with_index(write=write, tried=tried)

    def decode(self, value):
        # A pickle (every value but an int, which django-redis stores as digits) starts with its protocol marker:
        # decoded straight away, without django-redis's int() attempt and its exception per value, which made
        # reading 1,000 cached latest readings (GET /api/v1/fleet/status) cost twice the MGET itself.
        if isinstance(value, bytes) and value[:1] == b"\x80" and isinstance(self._compressor, IdentityCompressor):
            return self._serializer.loads(value)
        return super().decode(value)

    def raw_client(self):
        """The redis-py client whatever the breaker says: probes (``/readyz``, doctor) must see the truth."""
        return DefaultClient.get_client(self, write=True)


class FailOpenRedisCache(RedisCache):
    def __init__(self, server, params):
        options = dict(params.get("OPTIONS", {}))
        options.setdefault("CLIENT_CLASS", "smartmaint.cache.FailOpenClient")
        options["IGNORE_EXCEPTIONS"] = True
        retry = float(options.pop("RETRY_SECONDS", 5))
        super().__init__(server, {**params, "OPTIONS": options})
        self.breaker = breaker_for(str(server), retry)
        self._log_ignored_exceptions = True
        self.logger = _OutageLog(self.breaker)

    def probe(self) -> None:
        """Ping Redis; raises when it does not answer."""
        self.client.raw_client().ping()

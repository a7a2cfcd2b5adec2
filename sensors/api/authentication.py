"""API key authentication for gateways and devices (keys from djangorestframework-api-key, hashed)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from sensors.models import APIKey

# last_used_at is written at most this often per key, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class KeyHolder:
    """The request's "user" when it is authenticated by an API key: authenticated, never staff, no model perms."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, key: APIKey):
        self.key = key
        self.username = f"api-key:{key.prefix}"

    def has_perm(self, perm: str, obj=None) -> bool:
        return False

    def __str__(self) -> str:
        return f"API key {self.key.name!r} ({self.key.prefix})"


class APIKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Api-Key <key>`` or ``X-API-Key: <key>``."""

    keyword = "Api-Key"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header.startswith(f"{self.keyword} "):
            raw = header[len(self.keyword) + 1 :].strip()
        else:
            raw = request.META.get("HTTP_X_API_KEY", "").strip()
        if not raw:
            return None
        try:
            key = APIKey.objects.get_from_key(raw)
        except APIKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from None
        if key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return KeyHolder(key), key

    def authenticate_header(self, request):
        return self.keyword

"""Writes that belong to the project as a whole rather than to one app: sign-in sessions."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken


@transaction.atomic
def user_tokens_revoke(*, user: AbstractBaseUser) -> int:
    """Blacklist every unexpired refresh token of ``user`` (sign them out of the API everywhere); returns how many.

    Access tokens cannot be blacklisted; they are tied to the password hash instead (CHECK_REVOKE_TOKEN), and
    live JWT_ACCESS_MINUTES at most.
    """
    outstanding = OutstandingToken.objects.filter(
        user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    )
    revoked = BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )
    return len(revoked)


@transaction.atomic
def admin_password_reset(*, username: str, password: str) -> int:
    """Give the superuser ``username`` a new password and lift its sign-in lockout; returns how many counted
    failed sign-ins were cleared. Raises ``LookupError`` when there is no such superuser.

    A forgotten password usually comes with a lockout (django-axes counted the guesses), so both go together.
    Saving the new password also ends the user's API sessions (smartmaint.password_validation).
    """
    from axes.utils import reset as axes_reset
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.select_for_update().filter(username=username, is_superuser=True).first()
    if user is None:
        raise LookupError(username)
    user.set_password(password)
    user.save(update_fields=["password"])
    return axes_reset(username=username)

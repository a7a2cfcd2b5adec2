"""JWT refresh that honours the password tie simplejwt applies only to access tokens."""

from django.contrib.auth import get_user_model
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt import serializers
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import get_md5_hash_password


class TokenRefreshSerializer(serializers.TokenRefreshSerializer):
    """A new access token and a new refresh token; the refresh token sent is used up (blacklisted)."""

    # With CHECK_REVOKE_TOKEN, simplejwt (5.5.1) writes a digest of the password hash into every token but
    # compares it only when an access token authenticates: a refresh token from before a password change
    # would still mint access tokens (useless ones, but a rotation and a blacklist entry each time) and
    # still look valid. Checking here, before the rotation, makes a password change end every session,
    # whichever way the password was changed (admin, `changepassword`, `set_password` in a shell).
    def validate(self, attrs):
        if api_settings.CHECK_REVOKE_TOKEN:
            token = self.token_class(attrs["refresh"])  # signature, expiry and blacklist first (TokenError)
            user = (
                get_user_model()
                .objects.filter(**{api_settings.USER_ID_FIELD: token.get(api_settings.USER_ID_CLAIM)})
                .first()
            )
            if user is None or token.get(api_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(user.password):
                raise AuthenticationFailed("The user's password has been changed.", code="password_changed")
        return super().validate(attrs)

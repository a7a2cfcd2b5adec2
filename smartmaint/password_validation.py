"""A password "validator" that validates nothing: Django calls its ``password_changed`` after every password
change that is saved, wherever it happens (admin forms, ``manage.py changepassword``, ``set_password`` and
``save`` in code). The one hook that covers them all without a signal handler."""

from smartmaint.services import user_tokens_revoke


class RevokeTokensOnPasswordChange:
    def validate(self, password, user=None) -> None:
        return None

    def password_changed(self, password, user=None) -> None:
        if user is not None and user.pk is not None:
            user_tokens_revoke(user=user)

    def get_help_text(self) -> str:
        # Listed with the password rules on the admin's password forms.
        return "Changing the password signs the account out of the API everywhere."

"""Who may do what: people (JWT or session) and API keys (scope and limits)."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from sensors.models import APIKey


def request_key(request) -> APIKey | None:
    return request.auth if isinstance(request.auth, APIKey) else None


def _authenticated(request) -> bool:
    return bool(request.user and request.user.is_authenticated)


class FleetPermission(BasePermission):
    """Assets and sensors: any authenticated user or read-scoped key reads; staff users write (those in a group,
    such as the maintenance groups, only as their model permissions allow: a Viewer never, a manager yes)."""

    message = "Only staff users may change assets and sensors; API keys are read-only here."

    def has_permission(self, request, view) -> bool:
        key = request_key(request)
        if key is not None:
            return request.method in SAFE_METHODS and key.can_read
        if not _authenticated(request):
            return False
        if request.method in SAFE_METHODS:
            return True
        if not request.user.is_staff:
            return False
        if request.user.is_superuser or not request.user.groups.exists():
            return True  # staff accounts in no group: as before the maintenance groups existed
        # People in groups (Maintenance manager, Technician, Viewer): their model permissions decide.
        action = {"POST": "add", "DELETE": "delete"}.get(request.method, "change")
        model = view.queryset.model._meta
        return request.user.has_perm(f"{model.app_label}.{action}_{model.model_name}")


class CanReadReadings(BasePermission):
    message = "This API key has no read scope."

    def has_permission(self, request, view) -> bool:
        key = request_key(request)
        return key.can_read if key is not None else _authenticated(request)


class CanIngest(BasePermission):
    message = "Ingest needs an API key with the ingest scope or a user with the 'Can ingest readings' permission."

    def has_permission(self, request, view) -> bool:
        key = request_key(request)
        if key is not None:
            return key.can_ingest
        return _authenticated(request) and request.user.has_perm("readings.ingest_reading")


class CanScore(BasePermission):
    """Scoring reads a sensor's readings and writes what it finds (anomalies, alerts, mail): a write.

    Keys need the read-and-ingest scope (a read-only key must not open alerts or send mail, and an
    ingest-only key may not read); people need to be staff, as for every other write by a person.
    """

    message = "Scoring needs an API key with the read-and-ingest scope or a staff user."

    def has_permission(self, request, view) -> bool:
        key = request_key(request)
        if key is not None:
            return key.can_read and key.can_ingest
        return _authenticated(request) and request.user.is_staff

"""Project-level API views: the API root, JSON 404s for unknown API URLs, and JWT views with their 401
documented."""

from functools import cache

from django.http import JsonResponse
from django.urls import reverse
from django.views.defaults import page_not_found as html_page_not_found
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from drf_standardized_errors.handler import exception_handler
from drf_standardized_errors.openapi_serializers import ClientErrorEnum
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed, NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt import views as jwt_views

from smartmaint.lockout import LoginLockedOut


def page_not_found(request, exception=None):
    """Unknown URLs under /api/ answer in the API's error shape, not with an HTML page."""
    if request.path.startswith("/api/"):
        response = exception_handler(NotFound(), {"request": request, "view": None})
        return JsonResponse(response.data, status=response.status_code)
    return html_page_not_found(request, exception)


class JWTError401Serializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=["authentication_failed", "no_active_account", "token_not_valid"])
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True)


class JWTErrorResponse401Serializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ClientErrorEnum.choices)
    errors = JWTError401Serializer(many=True)


class JWTError429Serializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=["throttled", "locked_out"])
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True)


def _with_401(view):
    # Wrong credentials or tokens are a 401 with simplejwt's own codes;
    # drf-spectacular cannot infer that for these AllowAny views.
    # simplejwt names its serializers in settings (serializer_class is None): ask the view for the class.
    return extend_schema(responses={200: view().get_serializer_class(), 401: JWTErrorResponse401Serializer})(view)


class LockedOut429Serializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ClientErrorEnum.choices)
    errors = JWTError429Serializer(many=True)


class LockoutAwareTokenObtainPairView(jwt_views.TokenObtainPairView):
    """Token obtain that answers a locked-out client with 429 (django-axes counted the failures).

    simplejwt passes the request to authenticate(), so axes's backend refuses a locked-out account or
    address before any password is hashed, and its signal handler counts each failure; it flags the
    request it was given (this DRF request), which is why the answer is made here rather than by axes's
    middleware.
    """

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except AuthenticationFailed:
            if getattr(request, "axes_locked_out", False):
                raise LoginLockedOut() from None
            raise


TokenObtainPairView = extend_schema(
    responses={
        200: LockoutAwareTokenObtainPairView().get_serializer_class(),
        401: JWTErrorResponse401Serializer,
        429: LockedOut429Serializer,
    }
)(LockoutAwareTokenObtainPairView)
TokenRefreshView = _with_401(jwt_views.TokenRefreshView)
# Logout: the refresh token given is blacklisted (access tokens expire by themselves, JWT_ACCESS_MINUTES).
TokenBlacklistView = _with_401(jwt_views.TokenBlacklistView)
TokenVerifyView = _with_401(jwt_views.TokenVerifyView)


class SwaggerUIView(SpectacularSwaggerSplitView):
    """Swagger UI that runs under the Content-Security-Policy: no inline script or style.

    The split view serves the start-up script as its own request (``?script``) instead of inline, and the
    template takes drf-spectacular's inline page CSS from a static file.
    """

    template_name = "api/swagger_ui.html"


API_PREFIX = "/api/v1/"
METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE")


@cache
def api_endpoints() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(path, methods) of every endpoint the schema documents, from the URLconf (it does not change while the
    process runs): new endpoints appear without editing a list, and the root never links what the schema
    leaves out (itself, the schema)."""
    from drf_spectacular.generators import EndpointEnumerator, SchemaGenerator

    generator = SchemaGenerator()
    methods: dict[str, set[str]] = {}
    for path, _regex, method, callback in EndpointEnumerator().get_api_endpoints():
        if not path.startswith(API_PREFIX) or callback.cls is SpectacularAPIView:
            continue
        # As the schema generator decides: on a view instance, with extend_schema(exclude=True) honoured.
        view = generator.create_view(callback, method)
        if view.schema is not None and not view.schema.is_excluded():
            # {pk} named as in the schema ({id}).
            methods.setdefault(generator.coerce_path(path, method, view), set()).add(method)
    return tuple(
        (path, tuple(sorted(found, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER))))
        for path, found in sorted(methods.items())
    )


@extend_schema(exclude=True)
class APIRootView(APIView):
    """The API's entry point: where the docs and the schema are, and every endpoint with its methods.

    Open to anyone, like the schema and the docs it points to: it lists paths, never data. Paths with
    parameters (``{sensor_id}``) are templates, so only the others get a ``url`` to follow. Left out of the
    schema: it is navigation, not an operation a client integrates.
    """

    permission_classes = (AllowAny,)
    authentication_classes = ()

    def get(self, request, *args, **kwargs):
        endpoints = []
        for path, methods in api_endpoints():
            entry = {"path": path, "methods": list(methods)}
            if "{" not in path:
                entry["url"] = request.build_absolute_uri(path)
            endpoints.append(entry)
        return Response(
            {
                "docs": request.build_absolute_uri(reverse("api-docs")),
                "schema": request.build_absolute_uri(reverse("v1:schema")),
                "endpoints": endpoints,
            }
        )

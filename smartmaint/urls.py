from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from smartmaint import health
from smartmaint.api.views import (
    APIRootView,
    SwaggerUIView,
    TokenBlacklistView,
    TokenObtainPairView,
    TokenRefreshView,
    TokenVerifyView,
)

api_v1 = [
    path("", APIRootView.as_view(), name="root"),
    path("auth/token", TokenObtainPairView.as_view(), name="token-obtain"),
    path("auth/token/refresh", TokenRefreshView.as_view(), name="token-refresh"),
    path("auth/token/verify", TokenVerifyView.as_view(), name="token-verify"),
    path("auth/token/blacklist", TokenBlacklistView.as_view(), name="token-blacklist"),
    path("schema/", SpectacularAPIView.as_view(api_version="v1"), name="schema"),
    path("", include("sensors.api.urls")),
    path("", include("readings.api.urls")),
    path("", include("mlops.api.urls")),
    path("", include("maintenance.api.urls")),
]


class StaticRedirectView(RedirectView):
    """A temporary redirect to a static file, resolved per request: in production the target is the file's
    content-hashed name, which changes with the file (a permanent redirect would be cached for good)."""

    static_path = ""

    def get_redirect_url(self, *args, **kwargs):
        return static(self.static_path)


urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on every site, whatever the pages link.
    path("favicon.ico", StaticRedirectView.as_view(static_path="favicon.svg"), name="favicon"),
    # The console is the site: the bare address leads to it (the admin asks for a sign-in first).
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    # Work order files for the console: only to people who may see the work order (maintenance.views).
    path("maintenance/", include("maintenance.urls")),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/docs/", SwaggerUIView.as_view(url_name="v1:schema"), name="api-docs"),
]

handler404 = "smartmaint.api.views.page_not_found"

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from smartmaint import health
from smartmaint.api.views import (
    SwaggerUIView,
    TokenBlacklistView,
    TokenObtainPairView,
    TokenRefreshView,
    TokenVerifyView,
)

api_v1 = [
    path("auth/token", TokenObtainPairView.as_view(), name="token-obtain"),
    path("auth/token/refresh", TokenRefreshView.as_view(), name="token-refresh"),
    path("auth/token/verify", TokenVerifyView.as_view(), name="token-verify"),
    path("auth/token/blacklist", TokenBlacklistView.as_view(), name="token-blacklist"),
    path("schema/", SpectacularAPIView.as_view(api_version="v1"), name="schema"),
    path("", include("sensors.api.urls")),
    path("", include("readings.api.urls")),
    path("", include("mlops.api.urls")),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/docs/", SwaggerUIView.as_view(url_name="v1:schema"), name="api-docs"),
]

handler404 = "smartmaint.api.views.page_not_found"

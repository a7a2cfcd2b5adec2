from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as LibraryAPIKey

from sensors.models import APIKey, Asset, Sensor

# The library's own key model is unused: our keys carry a scope and limits.
admin.site.unregister(LibraryAPIKey)


class SensorInline(admin.TabularInline):
    model = Sensor
    fields = ["sensor_id", "sensor_type", "unit", "status", "normal_min", "normal_max", "sampling_interval"]
    extra = 0
    show_change_link = True


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "site", "location", "criticality", "status", "updated_at"]
    list_filter = ["site", "criticality", "status"]
    search_fields = ["code", "name", "site", "location"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [SensorInline]


@admin.register(Sensor)
class SensorAdmin(admin.ModelAdmin):
    list_display = ["sensor_id", "name", "asset", "sensor_type", "unit", "status", "normal_min", "normal_max"]
    list_filter = ["status", "sensor_type", "asset__site"]
    list_select_related = ["asset"]
    search_fields = ["sensor_id", "name", "asset__code", "asset__name"]
    autocomplete_fields = ["asset"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(APIKey)
class APIKeyAdmin(APIKeyModelAdmin):
    """Create and revoke gateway keys; the full key is shown once, at creation, then only its prefix."""

    list_display = [*APIKeyModelAdmin.list_display, "scope", "site", "last_used_at"]
    list_filter = [*APIKeyModelAdmin.list_filter, "scope", "site"]
    filter_horizontal = ["assets"]

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "last_used_at")

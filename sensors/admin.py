from django.contrib import admin

from sensors.models import Asset, Sensor


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

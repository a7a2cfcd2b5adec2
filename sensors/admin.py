from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import unquote
from django.db.models import Count
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as LibraryAPIKey

from sensors.admin_sites import SiteLimitedAdmin, SiteListFilter
from sensors.choices import SensorStatus
from sensors.models import APIKey, Asset, Sensor
from sensors.selectors import asset_sections
from sensors.services import sensor_set_status

# The library's own key model is unused: our keys carry a scope and limits.
admin.site.unregister(LibraryAPIKey)

CONSOLE_CSS = {"all": ["css/admin/console.css"]}


class QuickCheckboxAdmin:
    """The list's action checkbox written directly: Django renders a form widget template per row, which was a
    third of the sensor list's rendering (100 rows)."""

    def action_checkbox(self, obj):
        label = format_html(_("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            label,
        )


class TitledAdmin:
    """Page titles that say what the page is: a list by its plural ("Sensors", not "Select sensor to change"),
    an object's page by its kind and name ("Sensor sensor-001", not "Change sensor")."""

    def changelist_view(self, request, extra_context=None):
        title = capfirst(self.opts.verbose_name_plural)
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        if "title" not in extra_context:
            obj = self.get_object(request, unquote(object_id))
            if obj is not None:
                # The title names the object: Django's subtitle (the name again) would repeat it.
                title = f"{capfirst(self.opts.verbose_name)} {obj}"
                extra_context = {"title": title, "subtitle": None, **extra_context}
        return super().change_view(request, object_id, form_url, extra_context)


def status_badge(value: str, label: str):
    """A coloured label for a status (styled per value in static/css/admin/console.css)."""
    return format_html('<span class="sm-badge sm-badge--{}">{}</span>', value, label)


def set_status_action(status: SensorStatus):
    """An admin action that sets the selected sensors' status, logged in each sensor's history."""

    @admin.action(description=f"Set status of selected sensors to {status.label.lower()}", permissions=["change"])
    def action(modeladmin, request, queryset):
        changed = sensor_set_status(sensors=queryset, status=status)
        LogEntry.objects.log_actions(
            user_id=request.user.pk,
            queryset=Sensor.objects.filter(pk__in=changed),
            action_flag=CHANGE,
            change_message=[{"changed": {"fields": ["Status"]}}],
        )
        modeladmin.message_user(request, f"{len(changed)} sensor(s) set to {status.label.lower()}.")

    action.__name__ = f"set_status_{status.value}"
    return action


class AssetListFilter(admin.RelatedOnlyFieldListFilter):
    """Assets as a drop-down: a plant has hundreds, which as a list would run the filter column off the page."""

    template = "admin/filter_select.html"

    def field_choices(self, field, request, model_admin):
        # As RelatedOnlyFieldListFilter reads them, but only the columns an asset's name is made of: its notes and
        # metadata (JSON, decoded per row) were most of the cost of this query with hundreds of assets.
        pk_qs = model_admin.get_queryset(request).distinct().values_list(f"{self.field_path}__pk", flat=True)
        assets = Asset._default_manager.filter(pk__in=pk_qs).only("pk", "code", "name")
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            assets = assets.order_by(*ordering)
        return [(asset.pk, str(asset)) for asset in assets]

    def choices(self, changelist):
        # One query string per list, each option appending its asset to it: Django builds (copies, sorts and
        # urlencodes) the whole query string once per option, and a plant's hundreds of assets made this filter
        # a fifth of the sensor list's time.
        if changelist.add_facets or self.include_empty_choice:
            yield from super().choices(changelist)
            return
        base = changelist.get_query_string(remove=[self.lookup_kwarg, self.lookup_kwarg_isnull])
        joiner = "" if base == "?" else "&"
        yield {
            "selected": self.lookup_val is None and not self.lookup_val_isnull,
            "query_string": base,
            "display": _("All"),
        }
        for pk_val, val in self.lookup_choices:
            yield {
                "selected": self.lookup_val is not None and str(pk_val) in self.lookup_val,
                "query_string": f"{base}{joiner}{self.lookup_kwarg}={pk_val}",
                "display": val,
            }


class SensorInline(admin.TabularInline):
    model = Sensor
    fields = ["sensor_id", "sensor_type", "unit", "status", "normal_min", "normal_max", "sampling_interval"]
    extra = 0
    show_change_link = True
    # Deleting a sensor here would take its readings without a confirmation page; sensors are deleted from their
    # own page, where one with readings cannot be (it is decommissioned instead).
    can_delete = False


@admin.register(Asset)
class AssetAdmin(SiteLimitedAdmin, QuickCheckboxAdmin, TitledAdmin, admin.ModelAdmin):
    list_display = ["code", "name", "site", "location", "criticality", "status_badge", "sensor_count", "updated_at"]
    list_filter = ["site", "criticality", "status"]
    search_fields = ["code", "name", "site", "location"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [SensorInline]

    class Media:
        css = CONSOLE_CSS

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(sensor_count=Count("sensors"))

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return status_badge(obj.status, obj.get_status_display())

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and not add:
            # Other apps' sections (sensors.selectors.register_asset_section), shown after the asset's signals.
            context["asset_sections"] = asset_sections(request=request, asset=obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @admin.display(description="sensors", ordering="sensor_count")
    def sensor_count(self, obj):
        return obj.sensor_count


@admin.register(Sensor)
class SensorAdmin(SiteLimitedAdmin, QuickCheckboxAdmin, TitledAdmin, admin.ModelAdmin):
    site_lookup = "asset__site"
    list_display = ["sensor_id", "name", "asset", "sensor_type", "unit", "status_badge", "normal_min", "normal_max"]
    list_filter = ["status", "sensor_type", ("asset__site", SiteListFilter), ("asset", AssetListFilter)]
    list_select_related = ["asset"]
    search_fields = ["sensor_id", "name", "asset__code", "asset__name"]
    autocomplete_fields = ["asset"]
    readonly_fields = ["created_at", "updated_at"]
    actions = [set_status_action(status) for status in SensorStatus]

    class Media:
        css = CONSOLE_CSS
        js = ["js/admin/list_filters.js"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return status_badge(obj.status, obj.get_status_display())


@admin.register(APIKey)
class APIKeyAdmin(APIKeyModelAdmin):
    """Create and revoke gateway keys; the full key is shown once, at creation, then only its prefix."""

    list_display = [*APIKeyModelAdmin.list_display, "scope", "site", "last_used_at"]
    list_filter = [*APIKeyModelAdmin.list_filter, "scope", "site"]
    filter_horizontal = ["assets"]

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "last_used_at")

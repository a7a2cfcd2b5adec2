"""Readings in the admin console: fault labels, and the fleet's admin pages extended with signals.

sensors cannot import readings (dependencies point one way), so the sensor and asset pages that show readings
(last value, sparkline, chart, exports) are registered here as subclasses of the fleet's own admin classes.
"""

from __future__ import annotations

import json
from collections import Counter

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince
from django.utils.translation import gettext

from readings.admin_views import (
    CONNECTIVITY,
    CUSTOM_RANGE,
    RANGES,
    asset_page_context,
    chart_range,
    parse_moment,
    sensor_page_context,
)
from readings.exports import ExportsBusy, readings_csv_response
from readings.models import FaultLabel, Reading
from readings.selectors import (
    attention_items,
    attention_reasons,
    fleet_status,
    readings_in_range,
    sensor_interval,
    sensor_latest_readings,
    sensor_sparklines,
    sensor_state,
    sensor_status_row,
    sparkline_window,
)
from readings.templatetags.console import fast_escape, row_link
from sensors.admin import AssetAdmin as FleetAssetAdmin
from sensors.admin import SensorAdmin as FleetSensorAdmin
from sensors.admin_sites import SiteLimitedAdmin
from sensors.choices import SensorStatus
from sensors.models import Asset, Sensor

CONSOLE_MEDIA = {
    "js": ["vendor/uplot/uPlot.iife.min.js", "js/admin/sparklines.js", "js/admin/sensor_chart.js"],
    "css": {"all": ["vendor/uplot/uPlot.min.css", "css/admin/console.css"]},
}
CONNECTIVITY_LABELS = dict(CONNECTIVITY)
SIGNALS = {
    "attention": "Needs attention",
    "online": "Online",
    "stale": "Stale",
    "offline": "Offline",
    "no_data": "No data",
    "out_of_range": "Out of normal range",
}


@admin.register(FaultLabel)
class FaultLabelAdmin(SiteLimitedAdmin, admin.ModelAdmin):
    site_lookup = "sensor__asset__site"
    list_display = ["sensor", "kind", "start", "end", "source"]
    list_filter = ["kind", "source"]
    list_select_related = ["sensor"]
    search_fields = ["sensor__sensor_id"]
    autocomplete_fields = ["sensor"]
    date_hierarchy = "start"
    readonly_fields = ["created_at"]


class SensorSignalFilter(admin.SimpleListFilter):
    """Sensors by their signal: connectivity against the expected interval, range, or needing attention.

    Resolved through ``fleet_status`` (latest readings from the cache), then applied as a list of sensor ids:
    the hypertable is never joined into the sensor list's query.
    """

    title = "signal"
    parameter_name = "signal"

    def lookups(self, request, model_admin):
        return list(SIGNALS.items())

    def queryset(self, request, queryset):
        value = self.value()
        if value not in SIGNALS:
            return queryset
        states = fleet_status(sensors=queryset)
        if value == "attention":
            sensor_ids = attention_items(states=states, limit=0)["sensor_ids"]
        elif value == "out_of_range":
            sensor_ids = [state["sensor_id"] for state in states if state["out_of_range"]]
        else:
            sensor_ids = [state["sensor_id"] for state in states if state["connectivity"] == value]
        return queryset.filter(sensor_id__in=sensor_ids)


def _badge(value: str, label: str) -> str:
    """sensors.admin.status_badge as a plain string (its markup and classes)."""
    return f'<span class="sm-badge sm-badge--{fast_escape(value)}">{fast_escape(label)}</span>'


def _number(value: float) -> str:
    return f"{value:.4g}"


admin.site.unregister(Sensor)


@admin.register(Sensor)
class SensorAdmin(FleetSensorAdmin):
    """The sensor list with each sensor's last value, its age and a 24-hour sparkline; the sensor page with its
    chart, newest readings and CSV export.

    Whatever the page size, the list costs the same queries: the latest readings of the page's sensors come
    from the cache (one query for those missing) and all sparklines from one query.
    """

    # Few, narrow columns: with the filters beside it the table must read at a glance at 1280 px (the name and
    # unit are on the sensor page; search covers names).
    list_display = ["sensor_id", "asset_code", "sensor_type", "state", "last_value", "last_age", "sparkline"]
    list_display_links = ["sensor_id"]
    list_filter = [*FleetSensorAdmin.list_filter, SensorSignalFilter]
    actions = [*FleetSensorAdmin.actions, "export_readings_csv"]

    class Media:
        js = CONSOLE_MEDIA["js"]
        css = CONSOLE_MEDIA["css"]

    def get_urls(self):
        opts = self.opts
        return [
            path(
                "<path:object_id>/readings.csv",
                self.admin_site.admin_view(self.readings_csv_view),
                name=f"{opts.app_label}_{opts.model_name}_readings_csv",
            ),
            *super().get_urls(),
        ]

    # --- The list ------------------------------------------------------------------------------------------------

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        sensors = list(changelist.result_list)
        now = timezone.now()
        latest = sensor_latest_readings(sensor_pks=[sensor.pk for sensor in sensors])
        lines = sensor_sparklines(latest=latest, now=now)
        for sensor in sensors:
            reading = latest.get(sensor.pk)
            sensor.signal_state = sensor_state(sensor_status_row(sensor), reading, now)
            sensor.signal_now = now
            window = sparkline_window(reading, now) if reading else None
            sensor.sparkline_data = (lines.get(sensor.pk), window)
        changelist.result_list = sensors
        changelist.checkbox_label = gettext("Select this object for an action - {}")
        changelist.sensor_url_prefix = reverse(
            f"{self.admin_site.name}:sensors_sensor_changelist", current_app=self.admin_site.name
        )
        return changelist

    # The rows are written here (templates/admin/sensors/sensor/change_list.html, the console tag
    # fast_result_list), with the markup and classes Django's list gives them: Django's generic path per cell
    # (field lookup, label, display, link) was most of the list's time, more than its queries.
    FAST_COLUMNS = ("asset_code", "state", "last_value", "last_age", "sparkline")

    def result_cells(self, sensor, changelist) -> list | None:
        """The cells of ``sensor``'s row, or None for Django's own path (a column this does not know).

        Plain strings, escaped where they carry data: format_html's lazy-aware escaping of every argument was
        the larger part of what remained per row.
        """
        cells = []
        for name in changelist.list_display:
            if name == "action_checkbox":
                # QuickCheckboxAdmin.action_checkbox's markup, its label translated once per list.
                label = changelist.checkbox_label.format(fast_escape(sensor))
                cells.append(
                    f'<td class="action-checkbox"><input type="checkbox" name="{helpers.ACTION_CHECKBOX_NAME}" '
                    f'value="{fast_escape(sensor.pk)}" class="action-select" aria-label="{label}"></td>'
                )
            elif name == "sensor_id":
                url = row_link(changelist, f"{changelist.sensor_url_prefix}{sensor.pk}/change/")
                cells.append(f'<th class="field-sensor_id"><a href="{url}">{fast_escape(sensor.sensor_id)}</a></th>')
            elif name == "sensor_type":
                cells.append(f'<td class="field-sensor_type">{fast_escape(sensor.get_sensor_type_display())}</td>')
            elif name in self.FAST_COLUMNS:
                cells.append(f'<td class="field-{name}">{conditional_escape(getattr(self, name)(sensor))}</td>')
            else:
                return None
        return [mark_safe(cell) for cell in cells]  # noqa: S308 (every value above is escaped)

    @admin.display(description="asset", ordering="asset__code")
    def asset_code(self, obj):
        return mark_safe(f'<span title="{fast_escape(obj.asset.name)}">{fast_escape(obj.asset.code)}</span>')  # noqa: S308

    @admin.display(description="status")
    def state(self, obj):
        """The signal's connectivity and range; the sensor's own status too when it is not active."""
        state = obj.signal_state
        badges = [_badge(state["connectivity"], CONNECTIVITY_LABELS[state["connectivity"]].lower())]
        if state["out_of_range"]:
            badges.append(_badge("out_of_range", "out of range"))
        if obj.status != SensorStatus.ACTIVE:
            badges.insert(0, _badge(obj.status, obj.get_status_display().lower()))
        return mark_safe(f'<span class="sm-state">{"".join(badges)}</span>')  # noqa: S308

    @admin.display(description="last value")
    def last_value(self, obj):
        state = obj.signal_state
        if state["value"] is None:
            return self.get_empty_value_display()
        text = f"{_number(state['value'])} {obj.unit}".strip()
        if state["out_of_range"]:
            return mark_safe(f'<strong class="sm-out-of-range">{fast_escape(text)}</strong>')  # noqa: S308
        return text

    @admin.display(description="age")
    def last_age(self, obj):
        state = obj.signal_state
        if state["time"] is None:
            return self.get_empty_value_display()
        moment = fast_escape(state["time"].isoformat())
        age = fast_escape(timesince(state["time"], obj.signal_now, depth=1))
        return mark_safe(f'<time datetime="{moment}" title="{moment}">{age}</time>')  # noqa: S308

    @admin.display(description="last 24 h")
    def sparkline(self, obj):
        line, window = obj.sparkline_data
        if not line:
            return self.get_empty_value_display()
        x = fast_escape(json.dumps(line["x"]))
        y = fast_escape(json.dumps([round(value, 6) for value in line["y"]]))
        return mark_safe(  # noqa: S308
            '<div class="sm-sparkline" role="img" aria-label="Hourly means over 24 hours" '
            f'data-x="{x}" data-y="{y}" data-start="{int(window[0].timestamp())}" '
            f'data-end="{int(window[1].timestamp())}"></div>'
        )

    # --- Deleting -------------------------------------------------------------------------------------------------

    def has_delete_permission(self, request, obj=None):
        # Django's delete confirmation loads every object the delete would cascade to: years of readings would
        # time the page out. A sensor with readings is decommissioned instead (status action or its page).
        if obj is not None and Reading.objects.filter(sensor=obj).exists():
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        # The bulk delete confirmation would load the readings of every selected sensor (see above).
        actions.pop("delete_selected", None)
        return actions

    # --- The sensor page ------------------------------------------------------------------------------------------

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and not add and request.user.has_perm("readings.view_reading"):
            context.update(sensor_page_context(request, obj))
            context["readings_csv_url"] = reverse(
                f"{self.admin_site.name}:sensors_sensor_readings_csv", args=[obj.pk], current_app=self.admin_site.name
            )
            context["readings_browser_url"] = reverse(
                f"{self.admin_site.name}:readings_browse", current_app=self.admin_site.name
            )
            context["plant_url"] = reverse(f"{self.admin_site.name}:plant", current_app=self.admin_site.name)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    # --- Exports --------------------------------------------------------------------------------------------------

    def has_export_permission(self, request):
        return self.has_view_permission(request) and request.user.has_perm("readings.view_reading")

    def readings_csv_view(self, request, object_id):
        """One sensor's readings as CSV: a preset ``range`` as on its page, or ``from``/``to`` (each optional)."""
        sensor = self.get_object(request, unquote(object_id))
        if sensor is None:
            raise Http404("No such sensor.")
        if not (self.has_view_permission(request, sensor) and self.has_export_permission(request)):
            raise PermissionDenied
        if request.GET.get("range") in RANGES:
            [reading] = sensor_latest_readings(sensor_pks=[sensor.pk]).values()
            chosen = chart_range(
                request.GET, last_time=reading and reading["time"], now=timezone.now(), interval=sensor_interval(sensor)
            )
            start, end = chosen.start, chosen.end
        else:
            try:
                start, end = parse_moment(request.GET.get("from")), parse_moment(request.GET.get("to"))
            except ValidationError:
                return HttpResponseBadRequest("from and to must be ISO 8601 date-times.")
        readings = readings_in_range(sensor=sensor, start=start, end=end).order_by("time")
        filename = _csv_name(sensor.sensor_id, start, end)
        return _csv_download(parts=[(sensor.sensor_id, readings)], filename=filename)

    @admin.action(description="Export readings of selected sensors as CSV", permissions=["export"])
    def export_readings_csv(self, request, queryset):
        """Ask for a range (intermediate page), then stream the readings of every selected sensor in it."""
        sensors = list(queryset.order_by("sensor_id"))
        error = ""
        if request.POST.get("apply"):
            now = timezone.now()
            latest = sensor_latest_readings(sensor_pks=[sensor.pk for sensor in sensors])
            ranges = {}
            for sensor in sensors:
                reading = latest.get(sensor.pk)
                ranges[sensor.pk] = chart_range(
                    request.POST, last_time=reading and reading["time"], now=now, interval=sensor_interval(sensor)
                )
            error = next((chosen.error for chosen in ranges.values() if chosen.error), "")
            if not error:
                parts = (
                    (
                        sensor.sensor_id,
                        readings_in_range(
                            sensor=sensor, start=ranges[sensor.pk].start, end=ranges[sensor.pk].end
                        ).order_by("time"),
                    )
                    for sensor in sensors
                )
                return _csv_download(parts=parts, filename=f"readings-{len(sensors)}-sensors.csv")
        return TemplateResponse(
            request,
            "admin/sensors/sensor/export_readings.html",
            {
                **self.admin_site.each_context(request),
                "title": "Export readings as CSV",
                "opts": self.opts,
                "sensors": sensors,
                "ranges": [(key, label) for key, (label, _) in RANGES.items()],
                "custom_range": CUSTOM_RANGE,
                "chosen": request.POST.get("range", "24h"),
                "error": error,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "media": self.media,
            },
        )


def _csv_download(*, parts, filename: str) -> HttpResponse:
    try:
        return readings_csv_response(parts=parts, filename=filename)
    except ExportsBusy as exc:
        response = HttpResponse(
            "Too many CSV exports are running right now; try again in a minute.",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(exc.retry_after)
        return response


def _csv_name(sensor_id: str, start, end) -> str:
    bounds = "-".join(f"{moment:%Y%m%dT%H%M}" if moment else "all" for moment in (start, end))
    return f"{sensor_id}-{bounds}.csv"


admin.site.unregister(Asset)


@admin.register(Asset)
class AssetAdmin(FleetAssetAdmin):
    """The asset list with how many of each asset's sensors need attention (one fleet status read per page); the
    asset page with all its sensors charted on one time axis and the asset's place in its site."""

    list_display = [*FleetAssetAdmin.list_display[:-1], "attention", FleetAssetAdmin.list_display[-1]]

    class Media:
        js = CONSOLE_MEDIA["js"]
        css = CONSOLE_MEDIA["css"]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and not add and request.user.has_perm("readings.view_reading"):
            name = self.admin_site.name

            def sensor_url(pk):
                return reverse(f"{name}:sensors_sensor_change", args=[pk], current_app=name)

            context.update(asset_page_context(request, obj, sensor_url=sensor_url))
            context["plant_url"] = reverse(f"{name}:plant", current_app=name)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        assets = list(changelist.result_list)
        states = fleet_status(sensors=Sensor.objects.filter(asset__in=[asset.pk for asset in assets]))
        flagged = Counter(state["asset_code"] for state in states if attention_reasons(state))
        for asset in assets:
            asset.attention_count = flagged.get(asset.code, 0)
        changelist.result_list = assets
        return changelist

    @admin.display(description="needing attention")
    def attention(self, obj):
        if not obj.attention_count:
            return "0"
        url = reverse(f"{self.admin_site.name}:sensors_sensor_changelist", current_app=self.admin_site.name)
        return format_html(
            '<a href="{}?asset__id__exact={}&amp;signal=attention">{}</a>', url, obj.pk, obj.attention_count
        )

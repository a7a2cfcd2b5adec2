"""The console's "Models and alerts": anomalies and scoring runs (read-only), alerts with acknowledge and resolve,
mail subscriptions, and the MLflow registry pages (mlops.admin_views) linked into the app list."""

from __future__ import annotations

import functools
from datetime import timedelta

from django import forms
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from mlops import admin_views
from mlops.choices import AlertMailState
from mlops.models import Alert, AlertSubscription, Anomaly, ScoringRun
from mlops.selectors import alert_condition_active, severity_rank
from mlops.services import alert_acknowledge, alert_resolve, anomaly_why
from sensors.admin import TitledAdmin
from sensors.admin_sites import SiteLimitedAdmin, SiteListFilter

MEDIA_CSS = {"all": ["css/admin/console.css", "mlops/admin.css"]}
# The alert page charts its sensor around the alert with the sensor page's own chart.
CHART_MEDIA = {
    "js": ["vendor/uplot/uPlot.iife.min.js", "js/admin/sensor_chart.js", "js/admin/list_filters.js"],
    "css": {"all": ["vendor/uplot/uPlot.min.css", "css/admin/console.css", "mlops/admin.css"]},
}
# How much of the sensor's signal the alert page charts before the alert opened, and after it was resolved.
ALERT_CHART_BEFORE = timedelta(hours=6)
ALERT_CHART_AFTER = timedelta(hours=1)
ALERT_CHART_LONGEST = timedelta(days=30)


def badge(kind: str, value: str, label: str):
    """A coloured label (styled per kind and value in mlops/static/mlops/admin.css)."""
    return format_html('<span class="sm-badge ml-badge ml-{}--{}">{}</span>', kind, value, label)


def model_link(name: str, version: str):
    """The model version's card on its registry page."""
    url = reverse("admin:mlops_registry_model", args=[name])
    return format_html('<a href="{}#v{}">{} v{}</a>', url, version, name, version)


class ScoringOutputAdmin(TitledAdmin, admin.ModelAdmin):
    """Rows written by scoring only: read-only, and no second COUNT(*) over a table that keeps growing."""

    show_full_result_count = False
    readonly_fields = ["created_at"]

    class Media:
        css = MEDIA_CSS

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Anomaly)
class AnomalyAdmin(SiteLimitedAdmin, ScoringOutputAdmin):
    site_lookup = "sensor__asset__site"
    list_display = ["sensor", "asset", "start", "end", "score_display", "kind", "why", "model_version_link"]
    list_filter = ["detector", "kind", "provisional", "model_name", "sensor__sensor_type", "start"]
    fields = [
        "sensor",
        "start",
        "end",
        "score",
        "kind",
        "detector",
        "provisional",
        "why",
        "explanation",
        "model_name",
        "model_version",
        "created_at",
    ]
    readonly_fields = ["created_at", "why"]
    list_select_related = ["sensor__asset"]
    search_fields = ["sensor__sensor_id"]
    # Deleting stays with the delete permission: clearing a bad model
    # version's findings is legitimate, and their alerts keep their history.

    @admin.display(description="asset", ordering="sensor__asset__code")
    def asset(self, obj):
        return obj.sensor.asset.code

    @admin.display(description="score", ordering="score")
    def score_display(self, obj):
        return f"{obj.score:.2f}"

    @admin.display(description="why")
    def why(self, obj):
        return anomaly_why(obj) or "-"

    @admin.display(description="model", ordering="model_name")
    def model_version_link(self, obj):
        return model_link(obj.model_name, obj.model_version)


def _alert_action(service, *, verb: str, skipped: str):
    """An action that applies ``service`` to each selected alert, logs the changed ones and reports counts."""

    def action(modeladmin, request, queryset):
        changed, total = [], 0
        with transaction.atomic():
            # Locked so two people acting on the same alerts do not overwrite each other's name and time.
            for alert in queryset.select_related(None).select_for_update():
                total += 1
                before = alert.status
                service(alert=alert, user=request.user)
                if alert.status != before:
                    changed.append(alert.pk)
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=Alert.objects.filter(pk__in=changed),
                action_flag=CHANGE,
                change_message=verb.capitalize(),
            )
        left = total - len(changed)
        message = f"{len(changed)} alert(s) {verb}."
        modeladmin.message_user(request, f"{message} {left} skipped ({skipped})." if left else message)

    return action


@admin.register(Alert)
class AlertAdmin(SiteLimitedAdmin, admin.ModelAdmin):
    site_lookup = "sensor__asset__site"
    list_display = [
        "severity_badge",
        "status_badge",
        "title",
        "sensor",
        "opened_at",
        "last_seen_at",
        "mail",
    ]
    list_display_links = ["title"]
    list_filter = ["status", "severity", "kind", ("sensor__asset__site", SiteListFilter)]
    list_select_related = ["sensor"]
    search_fields = ["title", "sensor__sensor_id"]
    readonly_fields = ["opened_at", "last_seen_at", "mail"]
    fieldsets = [
        (None, {"fields": ["title", "sensor", "kind", "severity", "status", "detail", "anomaly"]}),
        (
            "Handling",
            {
                "fields": [
                    "opened_at",
                    "last_seen_at",
                    "acknowledged_at",
                    "acknowledged_by",
                    "resolved_at",
                    "resolved_by",
                ]
            },
        ),
        (
            "Mail",
            {
                "fields": [
                    "mail",
                    "notify_state",
                    "notified_at",
                    "notified_to",
                    "notify_attempts",
                    "notify_error",
                    "notify_claimed_at",
                ]
            },
        ),
    ]
    actions = ["acknowledge", "resolve"]

    class Media:
        css = MEDIA_CSS

    # Alerts are raised by rules and scoring, and change only through the actions below (which record who and
    # when): the change permission enables the actions, while each alert's own page stays read-only.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    # An alert is the record of who handled what: resolve it instead.
    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        # Before the default URLs: their "<object_id>/" catch-all would take these.
        transitions = [
            path(
                f"<path:object_id>/{name}/",
                self.admin_site.admin_view(self.transition_view),
                {"action": name},
                name=f"mlops_alert_{name}",
            )
            for name in ("acknowledge", "resolve")
        ]
        return transitions + super().get_urls()

    def get_queryset(self, request):
        # ModelAdmin.get_queryset orders before an annotation could be added: the rank is annotated first here
        # (and the sites limited here too, as ModelAdmin's is not called).
        alerts = self.model._default_manager.get_queryset().annotate(severity_rank=severity_rank())
        return self.limit_to_sites(request, alerts.order_by(*self.get_ordering(request)))

    def get_ordering(self, request):
        # By severity's rank (critical, warning, info; not alphabetically), then newest first, as the dashboard.
        return ["-severity_rank", "-opened_at"]

    @property
    def media(self):
        return super().media + forms.Media(**CHART_MEDIA)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Alerts", **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The alert's page is read-only; its Acknowledge and Resolve buttons are the list actions, one alert at a
        # time, so staff arriving from the dashboard can act where they read it.
        can_act = super().has_change_permission(request)
        extra = {**(extra_context or {}), "can_act": can_act}
        alert = self.get_object(request, unquote(object_id))
        if alert is not None:
            extra.update(title=f"Alert: {alert.title}", subtitle=None)
            extra["condition_active"] = alert_condition_active(alert)
            if request.user.has_perm("readings.view_reading"):
                extra.update(alert_chart_context(alert))
        return super().change_view(request, object_id, form_url, extra)

    def transition_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not super().has_change_permission(request):
            raise PermissionDenied
        alerts = self.get_queryset(request).filter(pk=object_id)  # of the person's sites only
        if not alerts.exists():
            raise Http404("No such alert.")
        getattr(self, action)(request, alerts)
        return HttpResponseRedirect(reverse("admin:mlops_alert_change", args=[object_id]))

    @admin.display(description="mail")
    def mail(self, obj):
        """What mailing the alert really did: sent (to how many, when), nobody subscribed, pending or failing."""
        if obj.notify_state == AlertMailState.NO_RECIPIENTS:
            return "Nobody mailed: no subscriber for its severity"
        if obj.notify_state == AlertMailState.SENT and obj.notified_at:
            sent = len(obj.notified_to or ())
            to = f"{sent} subscriber{'s' if sent != 1 else ''}" if sent else "subscribers"
            return f"Mailed to {to}, {timezone.localtime(obj.notified_at):%Y-%m-%d %H:%M}"
        if obj.notify_state == AlertMailState.SENDING:
            return "Being sent"
        if obj.notify_attempts:
            error = f": {obj.notify_error[:120]}" if obj.notify_error else ""
            return f"Not sent yet, {obj.notify_attempts} failed attempt{'s' if obj.notify_attempts != 1 else ''}{error}"
        return "Not sent yet"

    @admin.display(description="severity", ordering="severity_rank")
    def severity_badge(self, obj):
        return badge("severity", obj.severity, obj.get_severity_display())

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return badge("status", obj.status, obj.get_status_display())

    acknowledge = admin.action(description="Acknowledge selected alerts", permissions=["change"])(
        _alert_action(alert_acknowledge, verb="acknowledged", skipped="not open")
    )
    resolve = admin.action(description="Resolve selected alerts", permissions=["change"])(
        _alert_action(alert_resolve, verb="resolved", skipped="already resolved, or held open by an active work order")
    )


def alert_chart_context(alert) -> dict:
    """The alert's sensor charted around it, as its own page charts it (static/js/admin/sensor_chart.js): from
    ALERT_CHART_BEFORE before it opened to ALERT_CHART_AFTER after it was resolved (to now while it is not)."""
    now = timezone.now()
    end = min(now, alert.resolved_at + ALERT_CHART_AFTER) if alert.resolved_at else now
    start = max(alert.opened_at - ALERT_CHART_BEFORE, end - ALERT_CHART_LONGEST)
    if start >= end:
        start = end - ALERT_CHART_BEFORE
    return sensor_chart_context(alert.sensor, start, end)


def sensor_chart_context(sensor, start, end) -> dict:
    """``sensor`` charted from ``start`` to ``end`` as its own page charts it: ``alert_chart`` (the span and its
    number of points) and ``sensor_chart`` (the data, for json_script). Also the work order page's chart."""
    from readings.selectors import sensor_chart

    chart = sensor_chart(sensor=sensor, start=start, end=end)
    return {
        "alert_chart": {"start": start, "end": end, "points": chart["points"]},
        "sensor_chart": {
            **chart,
            "sensor_id": sensor.sensor_id,
            "unit": sensor.unit,
            "normal_min": sensor.normal_min,
            "normal_max": sensor.normal_max,
            "timezone": timezone.get_current_timezone_name(),
            "start": int(start.timestamp()),
            "end": int(end.timestamp()),
        },
    }


@admin.register(AlertSubscription)
class AlertSubscriptionAdmin(TitledAdmin, admin.ModelAdmin):
    list_display = ["user", "email", "min_severity", "active"]
    list_filter = ["min_severity", "active"]
    list_select_related = ["user"]
    search_fields = ["user__username", "user__email"]
    autocomplete_fields = ["user"]

    @admin.display(description="e-mail", ordering="user__email")
    def email(self, obj):
        return obj.user.email or "(none: nothing is sent)"


class FlaggedRunFilter(admin.SimpleListFilter):
    """Scheduled runs that scored 0 windows while readings were due (the dashboard's flag links here)."""

    title = "flagged"
    parameter_name = "flagged"

    def lookups(self, request, model_admin):
        return [("yes", "0 windows while readings were due")]

    def queryset(self, request, queryset):
        return queryset.flagged() if self.value() == "yes" else queryset


@admin.register(ScoringRun)
class ScoringRunAdmin(ScoringOutputAdmin):
    list_display = [
        "created_at",
        "sensor_type",
        "model_version_link",
        "start",
        "end",
        "windows",
        "anomalies",
        "readings",
        "flag",
    ]
    list_filter = [FlaggedRunFilter, "sensor_type", "model_name"]

    @admin.display(description="flag")
    def flag(self, obj):
        if not obj.flagged:
            return ""
        return format_html('<span class="sm-badge sm-badge--flagged">0 windows, {} readings due</span>', obj.readings)

    # The log of what scoring did: nobody deletes it either.
    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="model", ordering="model_name")
    def model_version_link(self, obj):
        return model_link(obj.model_name, obj.model_version)

    # The registry pages have no table of ours (MLflow holds the models), so no ModelAdmin of their own: they
    # hang on the scoring runs' URLs, behind the admin's login and CSRF checks.
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("registry/", view(self.registry_list_view), name="mlops_registry"),
            path("registry/<path:name>/", view(self.registry_model_view), name="mlops_registry_model"),
            *super().get_urls(),
        ]

    def registry_list_view(self, request):
        return admin_views.registry_list_view(request, self.admin_site)

    def registry_model_view(self, request, name):
        return admin_views.registry_model_view(request, self.admin_site, name)


def _with_registry_entry(get_app_list):
    """Wrap a site's get_app_list so "Models and alerts" lists the registry pages beside its tables.

    Done here, around whatever site is ``admin.site``, because the app list has no hook for entries without a
    ModelAdmin and the site class belongs to the console (readings.admin_site).
    """

    @functools.wraps(get_app_list)
    def wrapper(request, app_label=None):
        app_list = get_app_list(request, app_label)
        can_view, can_change = admin_views.registry_permissions(request.user)
        if app_label not in (None, "mlops") or not can_view:
            return app_list
        entry = {
            "name": "Registered models (MLflow)",
            "object_name": "RegisteredModel",
            "admin_url": reverse("admin:mlops_registry", current_app=admin.site.name),
            "add_url": None,
            "view_only": not can_change,
            "perms": {"add": False, "change": can_change, "delete": False, "view": True},
        }
        for app in app_list:
            if app["app_label"] == "mlops":
                app["models"].insert(0, entry)
                break
        return app_list

    wrapper.adds_registry_entry = True
    return wrapper


if not getattr(admin.site.get_app_list, "adds_registry_entry", False):
    admin.site.get_app_list = _with_registry_entry(admin.site.get_app_list)

"""Work orders in the console: the list (mine, overdue, by asset, by site; most urgent first), each work order's
timeline, files and finding, and "Raise work order" on alerts and anomalies. Pages stay plain for now."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from maintenance.choices import ACTIVE_STATUSES
from maintenance.models import Attachment, Finding, WorkOrder, WorkOrderEvent
from maintenance.selectors import work_orders_visible
from maintenance.services import work_order_edit, work_order_raise_from_alert, work_order_raise_from_anomaly
from mlops.admin import AlertAdmin as BaseAlertAdmin
from mlops.admin import AnomalyAdmin as BaseAnomalyAdmin
from mlops.models import Alert, Anomaly
from sensors.models import UserSites
from sensors.selectors import user_sites, within_user_sites


class MineFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "mine"

    def lookups(self, request, model_admin):
        return [("1", "Mine"), ("0", "Not mine")]

    def queryset(self, request, queryset):
        if self.value() == "1":
            return queryset.filter(assignee=request.user)
        if self.value() == "0":
            return queryset.exclude(assignee=request.user)
        return queryset


class OverdueFilter(admin.SimpleListFilter):
    title = "due"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("1", "Overdue"), ("active", "Open (not done or cancelled)")]

    def queryset(self, request, queryset):
        if self.value() == "1":
            return queryset.overdue(timezone.now())
        if self.value() == "active":
            return queryset.filter(status__in=ACTIVE_STATUSES)
        return queryset


class SiteFilter(admin.SimpleListFilter):
    title = "site"
    parameter_name = "site"

    def lookups(self, request, model_admin):
        sites = user_sites(request.user)
        if sites is None:
            from sensors.models import Asset

            sites = Asset.objects.order_by("site").values_list("site", flat=True).distinct()
        return [(site, site) for site in sorted(set(sites))]

    def queryset(self, request, queryset):
        return queryset.filter(asset__site=self.value()) if self.value() else queryset


class AssetFilter(admin.RelatedOnlyFieldListFilter):
    template = "admin/filter_select.html"


class EventInline(admin.TabularInline):
    model = WorkOrderEvent
    fields = ["at", "kind", "user", "text", "from_status", "to_status", "assignee"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "timeline"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AttachmentInline(admin.TabularInline):
    model = Attachment
    fields = ["download", "content_type", "size", "uploaded_by", "uploaded_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="file")
    def download(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("attachment-download", args=[obj.pk]), obj.name)


class FindingInline(admin.StackedInline):
    model = Finding
    fields = [
        "outcome",
        "fault_kind",
        "fault_start",
        "fault_end",
        "cause",
        "action",
        "time_spent_minutes",
        "parts_used",
        "label",
        "recorded_by",
        "recorded_at",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WorkOrder)
class WorkOrderAdmin(admin.ModelAdmin):
    list_display = ["__str__", "asset", "site", "priority", "status", "assignee", "due_at", "overdue", "origin"]
    list_filter = [MineFilter, OverdueFilter, "status", "priority", SiteFilter, ("asset", AssetFilter), "origin"]
    list_select_related = ["asset", "assignee"]
    search_fields = ["title", "asset__code", "asset__name"]
    ordering = ["priority", "due_at", "pk"]
    inlines = [FindingInline, AttachmentInline, EventInline]
    # The workflow (status, assignment, finding) goes through the services: the API now, a page's forms later.
    readonly_fields = [
        "status",
        "origin",
        "alert",
        "anomaly",
        "due_at",
        "created_by",
        "created_at",
        "assigned_at",
        "started_at",
        "on_hold_at",
        "done_at",
        "cancelled_at",
        "overdue_reminded_at",
    ]
    fields = ["title", "description", "asset", "sensor", "priority", "assignee", *readonly_fields]
    raw_id_fields = ["asset", "sensor", "assignee"]

    def get_queryset(self, request):
        return work_orders_visible(user=request.user)

    def has_add_permission(self, request):
        return False  # raised from alerts and anomalies, or through the API (maintenance.services)

    def save_model(self, request, obj, form, change):
        # Title, description and priority only (the rest is read-only here); through the service, so that a new
        # priority moves the due date and the timeline says who changed what.
        edits = {
            name: form.cleaned_data[name] for name in ("title", "description", "priority") if name in form.changed_data
        }
        if change and edits:
            work_order_edit(work_order=obj, user=request.user, **edits)

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "asset", "sensor", "assignee"]

    @admin.display(description="site", ordering="asset__site")
    def site(self, obj):
        return obj.asset.site

    @admin.display(description="overdue", boolean=True)
    def overdue(self, obj):
        return obj.is_active and obj.due_at < timezone.now()


@admin.register(UserSites)
class UserSitesAdmin(admin.ModelAdmin):
    list_display = ["user", "all_sites", "site_list"]
    list_filter = ["all_sites"]
    search_fields = ["user__username"]
    autocomplete_fields = ["user"]

    @admin.display(description="sites")
    def site_list(self, obj):
        return ", ".join(obj.sites) or "-"


def _raise(request, raise_one, objects) -> WorkOrder | None:
    last = None
    made = existing = failed = 0
    for obj in objects:
        try:
            last, created = raise_one(obj, request.user)
        except ValidationError as exc:
            failed += 1
            messages.error(request, f"{obj}: {' '.join(exc.messages)}")
            continue
        made += created
        existing += not created
    if made or existing:
        text = f"{made} work order(s) raised."
        messages.success(request, text + (f" {existing} already had one." if existing else ""))
    return last


def _raise_from_alert(alert, user):
    return work_order_raise_from_alert(alert=alert, user=user)


def _raise_from_anomaly(anomaly, user):
    return work_order_raise_from_anomaly(anomaly=anomaly, user=user)


class RaiseWorkOrderMixin:
    """An action and a button ("Raise work order") that raise a work order pre-filled from the row."""

    raise_one = None

    def has_raise_permission(self, request):
        return request.user.has_perm("maintenance.add_workorder")

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/raise-work-order/",
                self.admin_site.admin_view(self.raise_view),
                name=f"{opts.app_label}_{opts.model_name}_raise_work_order",
            ),
            *super().get_urls(),
        ]

    def raise_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_raise_permission(request):
            raise PermissionDenied
        obj = get_object_or_404(self._raisable(request), pk=object_id)
        work_order = _raise(request, type(self).raise_one, [obj])
        if work_order is None:
            opts = self.model._meta
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[object_id]))
        return HttpResponseRedirect(reverse("admin:maintenance_workorder_change", args=[work_order.pk]))

    def _raisable(self, request):
        return within_user_sites(self.model.objects.all(), request.user, site="sensor__asset__site")

    @admin.action(description="Raise work order", permissions=["raise"])
    def raise_work_order(self, request, queryset):
        work_order = _raise(request, type(self).raise_one, queryset.filter(pk__in=self._raisable(request)))
        if work_order is not None and queryset.count() == 1:
            return HttpResponseRedirect(reverse("admin:maintenance_workorder_change", args=[work_order.pk]))
        return None

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"can_raise_work_order": self.has_raise_permission(request)}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})


admin.site.unregister(Alert)
admin.site.unregister(Anomaly)


@admin.register(Alert)
class AlertAdmin(RaiseWorkOrderMixin, BaseAlertAdmin):
    raise_one = staticmethod(_raise_from_alert)
    actions = [*BaseAlertAdmin.actions, "raise_work_order"]
    change_form_template = "admin/maintenance/alert_change_form.html"


@admin.register(Anomaly)
class AnomalyAdmin(RaiseWorkOrderMixin, BaseAnomalyAdmin):
    raise_one = staticmethod(_raise_from_anomaly)
    actions = ["raise_work_order"]
    change_form_template = "admin/maintenance/anomaly_change_form.html"

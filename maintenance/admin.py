"""Work orders in the console: the list (named filters Open, Mine, Overdue, by site and asset; most urgent first),
each work order's page (its origin charted, timeline, files, and the forms to comment, attach, change status,
assign and record the finding, all through maintenance.services), and "Raise work order" on alerts and anomalies.
Both pages are usable on a phone (390 px)."""

from datetime import timedelta
from urllib.parse import urlencode

from django import forms as django_forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.encoding import iri_to_uri
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe

from maintenance import services
from maintenance.choices import ACTIVE_STATUSES, TRANSITIONS, WorkOrderStatus
from maintenance.forms import AssignForm, AttachmentForm, CommentForm, FindingForm, StatusForm
from maintenance.models import Finding, WorkOrder
from maintenance.selectors import (
    work_order_assignee_choices,
    work_order_can_manage,
    work_order_can_work_on,
    work_order_timeline,
    work_orders_visible,
)
from maintenance.services import work_order_edit, work_order_raise_from_alert, work_order_raise_from_anomaly
from mlops.admin import CHART_MEDIA, alert_chart_context, sensor_chart_context
from mlops.admin import AlertAdmin as BaseAlertAdmin
from mlops.admin import AnomalyAdmin as BaseAnomalyAdmin
from mlops.models import Alert, Anomaly
from readings.templatetags.console import fast_escape, row_link
from sensors.admin import AssetListFilter, QuickCheckboxAdmin
from sensors.admin_sites import NotFoundAdmin
from sensors.models import Asset, UserSites
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


class AssetFilter(AssetListFilter):
    """The assets of the person's sites as a drop-down (the sensor list's, which builds its links once per list).

    Not the assets that have work orders, as Django's "related only" filter offers: finding them is a DISTINCT
    over every work order (100,000: a third of the list's time, bench/maintenance.py)."""

    template = "admin/maintenance/workorder/asset_filter.html"

    def choices(self, changelist):
        options = []
        for choice in super().choices(changelist):
            selected = " selected" if choice["selected"] else ""
            value = fast_escape(iri_to_uri(choice["query_string"]))
            options.append(f'<option value="{value}"{selected}>{fast_escape(choice["display"])}</option>')
            yield choice
        self.options_html = mark_safe("".join(options))  # noqa: S308 (escaped above)

    def field_choices(self, field, request, model_admin):
        assets = within_user_sites(Asset.objects.order_by("site", "code"), request.user)
        return [(pk, f"{code} ({name})") for pk, code, name in assets.values_list("pk", "code", "name")]


@admin.register(WorkOrder)
class WorkOrderAdmin(NotFoundAdmin, QuickCheckboxAdmin, admin.ModelAdmin):
    list_display = ["work_order", "priority_badge", "status_badge", "due", "asset", "site", "assignee", "origin"]
    list_display_links = ["work_order"]
    list_filter = [MineFilter, OverdueFilter, "status", "priority", SiteFilter, ("asset", AssetFilter), "origin"]
    list_select_related = ["asset", "assignee"]
    # No second COUNT(*) of every work order for "n of N" (100,000: as long as the page's own query).
    show_full_result_count = False
    search_fields = ["title", "asset__code", "asset__name"]
    # Priority is stored as its rank (1 urgent .. 4 low), so this is most urgent first, then soonest due.
    ordering = ["priority", "due_at", "pk"]
    change_list_template = "admin/maintenance/workorder/change_list.html"
    change_form_template = "admin/maintenance/workorder/change_form.html"
    # The page shows status, due date, assignee, asset and sensor in its header; the workflow (status, assignment,
    # comments, files, finding) goes through the page's own forms (work_view) and maintenance.services.
    readonly_fields = [
        "origin",
        "alert",
        "anomaly",
        "created_by",
        "created_at",
        "assigned_at",
        "started_at",
        "on_hold_at",
        "done_at",
        "cancelled_at",
        "overdue_reminded_at",
    ]
    fields = ["title", "description", "priority", *readonly_fields]

    # The named filters above the list: each sets its parameters, keeping the site and asset chosen.
    TABS = [
        ("all", "All", {}),
        ("open", "Open", {"overdue": "active"}),
        ("mine", "Mine", {"mine": "1", "overdue": "active"}),
        ("overdue", "Overdue", {"overdue": "1"}),
    ]
    TAB_PARAMS = ("mine", "overdue")
    SITE_CHIPS_MAX = 12  # more sites than this: the site filter beside the list only
    FORMS = {
        "comment": CommentForm,
        "attach": AttachmentForm,
        "status": StatusForm,
        "assign": AssignForm,
        "finding": FindingForm,
    }

    @property
    def media(self):
        return super().media + django_forms.Media(**CHART_MEDIA)

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

    def get_urls(self):
        # Before the default URLs: their "<object_id>/" catch-all would take these.
        return [
            path(
                f"<path:object_id>/{name}/",
                self.admin_site.admin_view(self.work_view),
                {"form_name": name},
                name=f"maintenance_workorder_{name}",
            )
            for name in self.FORMS
        ] + super().get_urls()

    # --- The list ---------------------------------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        extra = {"title": "Work orders", **self.list_tabs(request), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def list_tabs(self, request) -> dict:
        """Links for the named filters (All, Open, Mine, Overdue) and the sites, each keeping the other choices."""
        params = {key: value for key, value in request.GET.items() if key not in ("p", "o", "_changelist_filters")}
        kept = {key: value for key, value in params.items() if key not in self.TAB_PARAMS}
        tabs = []
        for key, label, sets in self.TABS:
            selected = all(params.get(name) == sets.get(name) for name in self.TAB_PARAMS)
            tabs.append({"key": key, "label": label, "url": "?" + urlencode({**kept, **sets}), "selected": selected})
        sites = user_sites(request.user)
        if sites is None:
            from sensors.models import Asset

            sites = Asset.objects.order_by("site").values_list("site", flat=True).distinct()[: self.SITE_CHIPS_MAX + 1]
        sites = sorted(set(sites))
        site_links = []
        if 1 < len(sites) <= self.SITE_CHIPS_MAX:
            without = {key: value for key, value in params.items() if key != "site"}
            site_links.append({"label": "All sites", "url": "?" + urlencode(without), "selected": "site" not in params})
            for site in sites:
                site_links.append(
                    {
                        "label": site,
                        "url": "?" + urlencode({**without, "site": site}),
                        "selected": params.get("site") == site,
                    }
                )
        return {"sm_tabs": tabs, "sm_sites": site_links}

    # The rows are written here (change_list.html, the console's fast_result_list), with the markup and classes
    # Django's list gives them: Django's generic path per cell was most of the list's time once its queries were
    # a few milliseconds (bench/maintenance.py). tests/maintenance/test_bench_maintenance.py compares the two.
    def result_cells(self, obj, changelist) -> list | None:
        """The cells of ``obj``'s row, or None for Django's own path (a popup, or a column this does not know)."""
        if changelist.is_popup:
            return None
        empty = self.get_empty_value_display()
        cells = []
        for name in changelist.list_display:
            if name == "action_checkbox":
                cells.append(f'<td class="action-checkbox">{self.action_checkbox(obj)}</td>')
            elif name == "work_order":
                url = row_link(changelist, changelist.url_for_result(obj))
                cells.append(f'<th class="field-work_order"><a href="{url}">{self.work_order(obj)}</a></th>')
            elif name in ("priority_badge", "status_badge", "due"):
                cells.append(f'<td class="field-{name}">{conditional_escape(getattr(self, name)(obj))}</td>')
            elif name == "asset":
                cells.append(f'<td class="field-asset nowrap">{fast_escape(obj.asset)}</td>')
            elif name == "site":
                cells.append(f'<td class="field-site">{fast_escape(obj.asset.site)}</td>')
            elif name == "assignee":
                shown = empty if obj.assignee is None else fast_escape(obj.assignee)
                cells.append(f'<td class="field-assignee nowrap">{shown}</td>')
            elif name == "origin":
                cells.append(f'<td class="field-origin">{fast_escape(obj.get_origin_display())}</td>')
            else:
                return None
        return [mark_safe(cell) for cell in cells]  # noqa: S308 (every value above is escaped)

    @admin.display(description="work order", ordering="pk")
    def work_order(self, obj):
        return format_html('{}<span class="sm-phone-only sm-muted"> {}</span>', obj, obj.asset.code)

    @admin.display(description="priority", ordering="priority")
    def priority_badge(self, obj):
        return format_html(
            '<span class="sm-badge sm-badge--priority-{}">{}</span>', obj.priority, obj.get_priority_display()
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html('<span class="sm-badge sm-badge--{}">{}</span>', obj.status, obj.get_status_display())

    @admin.display(description="due", ordering="due_at")
    def due(self, obj):
        when = timezone.localtime(obj.due_at).strftime("%Y-%m-%d %H:%M")
        if obj.is_active and obj.due_at < timezone.now():
            return format_html('{} <span class="sm-badge sm-badge--overdue">Overdue</span>', when)
        return when

    @admin.display(description="site", ordering="asset__site")
    def site(self, obj):
        return obj.asset.site

    # --- The page ---------------------------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        bound = extra.pop("sm_bound", {})
        work_order = self.get_object(request, unquote(object_id))
        if work_order is not None:
            extra.update(self.page_context(request, work_order, bound))
        return super().change_view(request, object_id, form_url, extra)

    def page_context(self, request, work_order: WorkOrder, bound: dict) -> dict:
        """What the work order's page shows beside Django's form: its header, its origin charted, timeline,
        files, and the forms this person may use (none for viewers), ``bound`` ones with their errors."""
        user = request.user
        can_work = work_order_can_work_on(user=user, work_order=work_order)
        can_manage = can_work and work_order_can_manage(user=user, work_order=work_order)
        finding = Finding.objects.filter(work_order=work_order).select_related("recorded_by", "label").first()
        active = work_order.is_active
        page = {
            "title": str(work_order),
            "subtitle": None,
            "work_order": work_order,
            "overdue": active and work_order.due_at < timezone.now(),
            "finding": finding,
            "timeline": work_order_timeline(work_order=work_order),
            "attachments": work_order.attachments.select_related("uploaded_by"),
            "can_work": can_work,
            "can_manage": can_manage,
            "show_alert": work_order.alert_id is not None and user.has_perm("mlops.view_alert"),
            "show_anomaly": work_order.anomaly_id is not None and user.has_perm("mlops.view_anomaly"),
            "forms": {},
            "transitions": [],
        }
        if work_order.sensor_id is not None and user.has_perm("readings.view_reading"):
            page.update(self.origin_chart(work_order))
        forms = page["forms"]
        if can_work:
            forms["comment"] = bound.get("comment") or CommentForm()
            forms["attach"] = bound.get("attach") or AttachmentForm()
        if can_work and active:
            forms["status"] = bound.get("status")
            page["transitions"] = self.transitions(work_order, finding)
        if can_manage and active:
            candidates = work_order_assignee_choices(work_order=work_order)
            forms["assign"] = bound.get("assign") or AssignForm(
                candidates=candidates, initial={"assignee": work_order.assignee_id}
            )
        if can_work and finding is None and work_order.status in services.FINDING_STATUSES:
            forms["finding"] = bound.get("finding") or FindingForm(initial={"time_spent_minutes": 0})
        return page

    TRANSITION_LABELS = {
        WorkOrderStatus.ASSIGNED: "Back to assigned",
        WorkOrderStatus.IN_PROGRESS: "Start work",
        WorkOrderStatus.ON_HOLD: "Put on hold",
        WorkOrderStatus.DONE: "Mark done",
        WorkOrderStatus.CANCELLED: "Cancel work order",
    }

    def transitions(self, work_order: WorkOrder, finding) -> list[tuple[str, str]]:
        """The status buttons: the statuses TRANSITIONS allows from this one, but open (unassigning is the assign
        form's "Nobody"), assigned without an assignee (the assign form does it), done without a finding (the
        finding form completes the work order)."""
        allowed = TRANSITIONS[work_order.status]
        buttons = []
        for status in (
            WorkOrderStatus.IN_PROGRESS,
            WorkOrderStatus.ASSIGNED,
            WorkOrderStatus.ON_HOLD,
            WorkOrderStatus.DONE,
            WorkOrderStatus.CANCELLED,
        ):
            if status not in allowed:
                continue
            if status == WorkOrderStatus.ASSIGNED and work_order.assignee_id is None:
                continue
            if status == WorkOrderStatus.DONE and finding is None:
                continue
            label = self.TRANSITION_LABELS[status]
            if status == WorkOrderStatus.IN_PROGRESS and work_order.status == WorkOrderStatus.ON_HOLD:
                label = "Resume work"
            buttons.append((status.value, label))
        return buttons

    def origin_chart(self, work_order: WorkOrder) -> dict:
        """The sensor's chart around what raised the work order: the alert's page's span for an alert; for an
        anomaly, from ALERT_CHART_BEFORE (6 h) before it to an hour after it; by hand, the 6 h before it was
        raised up to now (or to when it closed)."""
        if work_order.alert_id is not None and work_order.alert.sensor_id == work_order.sensor_id:
            return alert_chart_context(work_order.alert)
        now = timezone.now()
        if work_order.anomaly_id is not None:
            start, end = work_order.anomaly.start - timedelta(hours=6), work_order.anomaly.end + timedelta(hours=1)
        else:
            start, end = work_order.created_at - timedelta(hours=6), work_order.done_at or work_order.cancelled_at
        end = min(end or now, now)
        if start >= end:
            start = end - timedelta(hours=6)
        return sensor_chart_context(work_order.sensor, start, end)

    def work_view(self, request, object_id, form_name):
        """A form of the work order's page, posted: checked here, done by maintenance.services. Back to the page
        on success; the page again with the form and its errors (status 400) otherwise."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        work_order = self.get_object(request, unquote(object_id))
        if work_order is None:
            raise Http404("No such work order.")
        user = request.user
        if form_name == "assign":
            allowed = work_order_can_manage(user=user, work_order=work_order) and work_order_can_work_on(
                user=user, work_order=work_order
            )
        else:
            allowed = work_order_can_work_on(user=user, work_order=work_order)
        if not allowed:
            raise PermissionDenied
        if form_name == "assign":
            form = AssignForm(request.POST, candidates=work_order_assignee_choices(work_order=work_order))
        elif form_name == "attach":
            form = AttachmentForm(request.POST, request.FILES)
        else:
            form = self.FORMS[form_name](request.POST)
        if form.is_valid():
            try:
                done, anchor = getattr(self, f"_do_{form_name}")(request, work_order, form.cleaned_data)
            except ValidationError as exc:
                form.add_error("file" if form_name == "attach" else None, " ".join(exc.messages))
            else:
                messages.success(request, done)
                url = reverse("admin:maintenance_workorder_change", args=[work_order.pk])
                return HttpResponseRedirect(f"{url}#{anchor}")
        # The page as a GET renders it (Django's change view would otherwise read this POST as its own form).
        request.method = "GET"
        response = self.change_view(request, object_id, extra_context={"sm_bound": {form_name: form}})
        response.status_code = 400
        return response

    def _do_comment(self, request, work_order, data):
        services.work_order_comment(work_order=work_order, user=request.user, text=data["text"])
        return "Comment added.", "sm-wo-timeline"

    def _do_attach(self, request, work_order, data):
        attachment = services.work_order_attach(work_order=work_order, user=request.user, file=data["file"])
        return f"Attached {attachment.name}.", "sm-wo-attachments"

    def _do_status(self, request, work_order, data):
        work_order = services.work_order_set_status(
            work_order=work_order, status=data["status"], user=request.user, note=data["note"]
        )
        return f"The work order is {work_order.get_status_display().lower()}.", "sm-wo-header"

    def _do_assign(self, request, work_order, data):
        assignee = data["assignee"]
        services.work_order_assign(work_order=work_order, assignee=assignee, user=request.user)
        who = (assignee.get_full_name() or assignee.get_username()) if assignee else None
        return (f"Assigned to {who}." if who else "Unassigned."), "sm-wo-header"

    def _do_finding(self, request, work_order, data):
        services.work_order_record_finding(
            work_order=work_order,
            user=request.user,
            outcome=data["outcome"],
            fault_kind=data["fault_kind"],
            fault_start=data["fault_start"],
            cause=data["cause"],
            action=data["action"],
            time_spent_minutes=data["time_spent_minutes"] or 0,
            parts_used=data["parts_used"],
        )
        return "Finding recorded; the work order is done.", "sm-wo-finding"


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

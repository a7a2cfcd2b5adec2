import django_filters
from django.db.models import Q
from django.utils import timezone

from maintenance.choices import ACTIVE_STATUSES, WorkOrderOrigin, WorkOrderPriority, WorkOrderStatus
from maintenance.models import WorkOrder
from smartmaint.api.filters import PrimaryKeyFilter, StrictFilterSet, UTCIsoDateTimeFilter

YES_NO = [("true", "Yes"), ("false", "No")]


class WorkOrderFilterSet(StrictFilterSet):
    q = django_filters.CharFilter(method="search", label="Search title, description and asset")
    status = django_filters.MultipleChoiceFilter(choices=WorkOrderStatus.choices)
    active = django_filters.ChoiceFilter(
        choices=YES_NO, method="filter_active", label="Open, assigned, in progress or on hold"
    )
    priority = django_filters.MultipleChoiceFilter(choices=WorkOrderPriority.choices)
    origin = django_filters.MultipleChoiceFilter(choices=WorkOrderOrigin.choices)
    asset = PrimaryKeyFilter(field_name="asset_id", label="Asset (ID)")
    asset_code = django_filters.CharFilter(field_name="asset__code", label="Asset (code)")
    site = django_filters.CharFilter(field_name="asset__site")
    sensor = django_filters.CharFilter(field_name="sensor__sensor_id", label="Sensor ID")
    assignee = PrimaryKeyFilter(field_name="assignee_id", label="Assignee (user ID)")
    mine = django_filters.ChoiceFilter(choices=YES_NO, method="filter_mine", label="Assigned to me")
    overdue = django_filters.ChoiceFilter(
        choices=YES_NO, method="filter_overdue", label="Past its due date and not closed"
    )
    alert = PrimaryKeyFilter(field_name="alert_id", label="Alert (ID)")
    anomaly = PrimaryKeyFilter(field_name="anomaly_id", label="Anomaly (ID)")
    due_before = UTCIsoDateTimeFilter(field_name="due_at", lookup_expr="lt", label="Due before")

    class Meta:
        model = WorkOrder
        fields = ["status", "priority", "origin", "asset", "asset_code", "site", "sensor", "assignee"]

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(title__icontains=value) | Q(description__icontains=value) | Q(asset__code__icontains=value)
        )

    def filter_active(self, queryset, name, value):
        active = Q(status__in=ACTIVE_STATUSES)
        return queryset.filter(active) if value == "true" else queryset.exclude(active)

    def filter_mine(self, queryset, name, value):
        user = getattr(self.request, "user", None)
        if user is None:
            return queryset
        return queryset.filter(assignee_id=user.pk) if value == "true" else queryset.exclude(assignee_id=user.pk)

    def filter_overdue(self, queryset, name, value):
        overdue = Q(status__in=ACTIVE_STATUSES, due_at__lt=timezone.now())
        return queryset.filter(overdue) if value == "true" else queryset.exclude(overdue)

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from mlops.choices import AlertStatus
from mlops.models import Anomaly


class UTCIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time converted to UTC.

    Python accepts UTC offsets up to 24 hours, PostgreSQL only up to about 16:
    a time like 2026-01-01T00:00+20:33 must become a plain UTC instant before
    it reaches the database, or a filter value would cause a server error.
    """

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:
            raise forms.ValidationError("This date-time is out of range.", code="overflow") from exc


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeField


class AnomalyFilterSet(django_filters.FilterSet):
    sensor = django_filters.CharFilter(field_name="sensor__sensor_id", label="Sensor ID")
    asset = django_filters.CharFilter(field_name="sensor__asset__code", label="Asset code")
    vars()["from"] = UTCIsoDateTimeFilter(field_name="end", lookup_expr="gte", label="Ends at or after")
    vars()["to"] = UTCIsoDateTimeFilter(field_name="start", lookup_expr="lt", label="Starts before")
    status = django_filters.ChoiceFilter(
        method="filter_status",
        choices=[*AlertStatus.choices, ("none", "No alert")],
        label="Status of its alert (none: below the alert threshold)",
    )
    model = django_filters.CharFilter(field_name="model_name")

    class Meta:
        model = Anomaly
        fields = ["sensor", "asset", "status", "model"]

    def filter_status(self, queryset, name, value):
        if value == "none":
            return queryset.filter(alerts__isnull=True)
        return queryset.filter(alerts__status=value).distinct()

import django_filters

from mlops.choices import AlertStatus
from mlops.models import Anomaly
from smartmaint.api.filters import StrictFilterSet, UTCIsoDateTimeFilter


class AnomalyFilterSet(StrictFilterSet):
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
    kind = django_filters.CharFilter(label="What it looks like: a fault kind (level_shift, drift, ...) or unknown")
    detector = django_filters.ChoiceFilter(
        choices=[("random_forest", "Supervised (random forest)"), ("normal", "Normal-behaviour model")],
        label="What found it",
    )

    class Meta:
        model = Anomaly
        fields = ["sensor", "asset", "status", "model", "kind", "detector"]

    def filter_status(self, queryset, name, value):
        if value == "none":
            return queryset.filter(alerts__isnull=True)
        return queryset.filter(alerts__status=value).distinct()

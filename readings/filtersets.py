import django_filters

from readings.choices import FaultKind, FaultSource
from readings.models import FaultLabel
from smartmaint.api.filters import PrimaryKeyFilter, StrictFilterSet, UTCIsoDateTimeFilter


class FaultLabelFilterSet(StrictFilterSet):
    # A sensor's external ID is its `sensor_id` everywhere in the API, so the primary keys are `*_pk` here
    # (not NetBox's `*_id`, which would read as the external ID).
    sensor = django_filters.CharFilter(field_name="sensor__sensor_id", label="Sensor ID")
    sensor_pk = PrimaryKeyFilter(field_name="sensor_id", label="Sensor (primary key)")
    asset = django_filters.CharFilter(field_name="sensor__asset__code", label="Asset code")
    asset_pk = PrimaryKeyFilter(field_name="sensor__asset_id", label="Asset (primary key)")
    kind = django_filters.MultipleChoiceFilter(choices=FaultKind.choices)
    source = django_filters.MultipleChoiceFilter(choices=FaultSource.choices)
    # Labels overlapping [from, to): a label covers [start, end], both ends included.
    vars()["from"] = UTCIsoDateTimeFilter(field_name="end", lookup_expr="gte", label="Ends at or after")
    vars()["to"] = UTCIsoDateTimeFilter(field_name="start", lookup_expr="lt", label="Starts before")

    class Meta:
        model = FaultLabel
        fields = ["sensor", "sensor_pk", "asset", "asset_pk", "kind", "source"]

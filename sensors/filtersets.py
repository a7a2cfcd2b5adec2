import django_filters
from django.db.models import Q

from sensors.choices import AssetCriticality, AssetStatus, SensorStatus, SensorType
from sensors.models import Asset, Sensor
from smartmaint.api.filters import PrimaryKeyFilter, StrictFilterSet


class AssetFilterSet(StrictFilterSet):
    q = django_filters.CharFilter(method="search", label="Search code, name, site and location")
    site = django_filters.CharFilter()
    status = django_filters.MultipleChoiceFilter(choices=AssetStatus.choices)
    criticality = django_filters.MultipleChoiceFilter(choices=AssetCriticality.choices)

    class Meta:
        model = Asset
        fields = ["site", "status", "criticality"]

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(code__icontains=value)
            | Q(name__icontains=value)
            | Q(site__icontains=value)
            | Q(location__icontains=value)
        )


class SensorFilterSet(StrictFilterSet):
    q = django_filters.CharFilter(method="search", label="Search sensor ID, name and asset")
    site = django_filters.CharFilter(field_name="asset__site")
    asset = PrimaryKeyFilter(field_name="asset_id", label="Asset (ID)")
    asset_code = django_filters.CharFilter(field_name="asset__code", label="Asset (code)")
    type = django_filters.MultipleChoiceFilter(field_name="sensor_type", choices=SensorType.choices)
    status = django_filters.MultipleChoiceFilter(choices=SensorStatus.choices)

    class Meta:
        model = Sensor
        fields = ["site", "asset", "asset_code", "type", "status"]

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(sensor_id__icontains=value)
            | Q(name__icontains=value)
            | Q(asset__code__icontains=value)
            | Q(asset__name__icontains=value)
        )

from rest_framework import viewsets

from sensors.api.permissions import FleetPermission, request_key
from sensors.api.serializers import AssetSerializer, SensorSerializer
from sensors.filtersets import AssetFilterSet, SensorFilterSet
from sensors.models import Asset, Sensor
from sensors.selectors import assets_visible, sensors_visible


class FleetViewSet(viewsets.ModelViewSet):
    """Shared behaviour of the fleet resources: permissions, and API keys see only their site/assets."""

    permission_classes = [FleetPermission]
    visible = None  # selector giving what the caller may see

    def get_queryset(self):
        key = request_key(self.request)
        return self.queryset.filter(pk__in=type(self).visible(key=key)) if key is not None else self.queryset


class AssetViewSet(FleetViewSet):
    queryset = Asset.objects.all()
    serializer_class = AssetSerializer
    filterset_class = AssetFilterSet
    visible = staticmethod(assets_visible)
    ordering_fields = ["code", "name", "site", "criticality", "status", "created_at"]
    ordering = ["code"]


class SensorViewSet(FleetViewSet):
    queryset = Sensor.objects.select_related("asset")
    serializer_class = SensorSerializer
    filterset_class = SensorFilterSet
    visible = staticmethod(sensors_visible)
    lookup_field = "sensor_id"
    lookup_value_regex = r"[A-Za-z0-9][A-Za-z0-9_.:-]*"
    ordering_fields = ["sensor_id", "sensor_type", "status", "created_at"]
    ordering = ["sensor_id"]

from django.db.models import ProtectedError
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, status, viewsets
from rest_framework.parsers import JSONParser

from sensors.api.permissions import FleetPermission, request_key
from sensors.api.serializers import AssetSerializer, SensorSerializer
from sensors.filtersets import AssetFilterSet, SensorFilterSet
from sensors.models import EXTERNAL_ID_PATTERN, Asset, Sensor
from sensors.selectors import assets_visible, sensors_visible, user_sites


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "protected"


MAX_NAMED = 20


@extend_schema_view(
    destroy=extend_schema(
        responses={
            204: OpenApiResponse(description="Deleted."),
            409: OpenApiResponse(description="Still in use (an asset with sensors): the detail names what holds it."),
        }
    )
)
class FleetViewSet(viewsets.ModelViewSet):
    """Shared behaviour of the fleet resources: permissions, and API keys see only their site/assets."""

    permission_classes = [FleetPermission]
    # JSON bodies only, like ingest: a form cannot say null (normal_min) or carry metadata as an object, and
    # "1.0" or "null" in a form field would be read otherwise than the schema's types say. Forms get 415;
    # the browsable API keeps its raw JSON form.
    parser_classes = [JSONParser]
    visible = None  # selector giving what the caller may see

    def get_queryset(self):
        key = request_key(self.request)
        if key is None and user_sites(self.request.user) is None:
            return self.queryset  # not limited: no subquery
        return self.queryset.filter(pk__in=type(self).visible(key=key, user=None if key else self.request.user))

    def perform_destroy(self, instance):
        # Assets keep their sensors (on_delete=PROTECT): say which, instead of failing with a 500.
        try:
            instance.delete()
        except ProtectedError as exc:
            names = sorted(str(obj) for obj in exc.protected_objects)
            kinds = " and ".join(sorted({str(obj._meta.verbose_name_plural) for obj in exc.protected_objects}))
            shown = ", ".join(names[:MAX_NAMED]) + (
                f" (+{len(names) - MAX_NAMED} more)" if len(names) > MAX_NAMED else ""
            )
            raise Conflict(
                f"{instance._meta.verbose_name.capitalize()} {instance} is still used by {len(names)} {kinds}: "
                f"{shown}. Move them elsewhere or delete them first."
            ) from exc


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
    lookup_value_regex = EXTERNAL_ID_PATTERN
    ordering_fields = ["sensor_id", "sensor_type", "status", "created_at"]
    ordering = ["sensor_id"]

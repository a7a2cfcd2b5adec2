from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sensors.models import Asset, Sensor


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField also takes a JSON number (`"notes": 0` is stored as "0"),
    which the schema's `type: string` refuses. Form and multipart values are strings anyway."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A JSON number: DRF's FloatField also reads `false` as 0.0 and `"1.5"` as 1.5."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON number with no fraction (60 or 60.0, as JSON Schema's integer): DRF also reads `"60"`."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class FleetSerializer(serializers.ModelSerializer):
    # Bodies are JSON only (FleetViewSet.parser_classes), so each field takes its JSON type and no other.
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.FloatField: StrictFloatField,
        models.IntegerField: StrictIntegerField,
        models.PositiveIntegerField: StrictIntegerField,
    }


@extend_schema_field({"type": "object", "additionalProperties": True, "description": "Free-form JSON object."})
class MetadataField(serializers.JSONField):
    """A JSON object (never null, a list or a scalar), free of NUL characters, which PostgreSQL's jsonb refuses."""

    default_error_messages = {
        # Doubled braces: DRF formats these messages with str.format.
        "not_an_object": 'Must be a JSON object, e.g. {{"maker": "ACME"}}; send {{}} for none.',
        "nul": "Must not contain NUL characters (\\u0000).",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_an_object")
        if _has_nul(value):
            self.fail("nul")
        return value


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class AssetSerializer(FleetSerializer):
    metadata = MetadataField(help_text="Free-form details: maker, model, serial, ...")

    class Meta:
        model = Asset
        fields = [
            "id",
            "code",
            "name",
            "site",
            "location",
            "criticality",
            "status",
            "notes",
            "metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        # The code exactly as given: trimmed, " PUMP-1" would pass the pattern the schema states, and fail it.
        extra_kwargs = {"code": {"trim_whitespace": False}}


class SensorSerializer(FleetSerializer):
    asset_code = serializers.CharField(source="asset.code", read_only=True)
    metadata = MetadataField()

    class Meta:
        model = Sensor
        fields = [
            "id",
            "sensor_id",
            "name",
            "asset",
            "asset_code",
            "sensor_type",
            "unit",
            "status",
            "normal_min",
            "normal_max",
            "sampling_interval",
            "metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        extra_kwargs = {"sensor_id": {"trim_whitespace": False}}

    def validate(self, attrs):
        low = attrs.get("normal_min", getattr(self.instance, "normal_min", None))
        high = attrs.get("normal_max", getattr(self.instance, "normal_max", None))
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError(
                {"normal_min": "The normal range's low end must not exceed its high end."}
            )
        return attrs

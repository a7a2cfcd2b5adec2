from rest_framework import serializers

from sensors.models import Asset, Sensor


class AssetSerializer(serializers.ModelSerializer):
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


class SensorSerializer(serializers.ModelSerializer):
    asset_code = serializers.CharField(source="asset.code", read_only=True)

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

    def validate(self, attrs):
        low = attrs.get("normal_min", getattr(self.instance, "normal_min", None))
        high = attrs.get("normal_max", getattr(self.instance, "normal_max", None))
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError(
                {"normal_min": "The normal range's low end must not exceed its high end."}
            )
        return attrs

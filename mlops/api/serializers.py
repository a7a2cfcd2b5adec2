from rest_framework import serializers

from mlops.models import Anomaly


class AnomalySerializer(serializers.ModelSerializer):
    sensor_id = serializers.CharField(source="sensor.sensor_id")
    asset_code = serializers.CharField(source="sensor.asset.code")

    class Meta:
        model = Anomaly
        fields = [
            "id",
            "sensor_id",
            "asset_code",
            "start",
            "end",
            "score",
            "kind",
            "model_name",
            "model_version",
            "created_at",
        ]


class ScoreRequestSerializer(serializers.Serializer):
    minutes = serializers.IntegerField(
        default=60, min_value=1, max_value=24 * 60, help_text="Score the readings of this many recent minutes."
    )


class ScoreResponseSerializer(serializers.Serializer):
    model_name = serializers.CharField()
    model_version = serializers.CharField()
    windows = serializers.IntegerField(help_text="Windows scored.")
    anomalies = AnomalySerializer(many=True)

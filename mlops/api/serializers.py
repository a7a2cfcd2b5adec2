from rest_framework import serializers

from mlops.models import Anomaly


class ContributionSerializer(serializers.Serializer):
    sensor = serializers.CharField(help_text="The sensor ID whose feature departed.")
    feature = serializers.CharField(help_text="level, spread (noise), range, repeats or drift.")
    z = serializers.FloatField(help_text="How far from normal, in the baseline's standard deviations (signed).")
    text = serializers.CharField(help_text='The same in words, e.g. "level 4.1 sigma above normal (+12 %)".')


class ExplanationSerializer(serializers.Serializer):
    supervised = serializers.FloatField(
        allow_null=True, required=False, help_text="The supervised detector's probability (null: none)."
    )
    normal = serializers.FloatField(required=False, help_text="The normal-behaviour model's score, 0 to 1.")
    ratio = serializers.FloatField(
        required=False, help_text="The departure from normal over its calibrated threshold (1: on it)."
    )
    contributions = ContributionSerializer(many=True, required=False, help_text="Largest departures first.")


class AnomalySerializer(serializers.ModelSerializer):
    sensor_id = serializers.CharField(source="sensor.sensor_id")
    asset_code = serializers.CharField(source="sensor.asset.code")
    explanation = ExplanationSerializer(help_text="Why the window was flagged.")

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
            "detector",
            "explanation",
            "model_name",
            "model_version",
            "provisional",
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

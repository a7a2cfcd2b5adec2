"""Request and response shapes of the readings API (the ingest body is validated in readings_ingest for speed)."""

from django.conf import settings
from rest_framework import serializers

from readings.aggregates import AGGREGATES, BUCKETS
from readings.models import FaultLabel, Reading


class ReadingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Reading
        fields = ["time", "value", "quality"]


class FaultLabelSerializer(serializers.ModelSerializer):
    sensor_id = serializers.CharField(source="sensor.sensor_id")
    asset_code = serializers.CharField(source="sensor.asset.code")

    class Meta:
        model = FaultLabel
        fields = ["id", "sensor_id", "asset_code", "kind", "start", "end", "source", "created_at"]


class IngestItemSerializer(serializers.Serializer):
    sensor_id = serializers.CharField()
    time = serializers.DateTimeField(help_text="ISO 8601 with a UTC offset, e.g. 2026-11-26T08:00:00Z.")
    value = serializers.FloatField(help_text="A finite number.")
    quality = serializers.FloatField(required=False, default=1.0, min_value=0.0, max_value=1.0)


class IngestBatchSerializer(serializers.Serializer):
    # A ListField, not many=True: drf-spectacular turns its length limits into minItems and maxItems.
    readings = serializers.ListField(
        child=IngestItemSerializer(),
        min_length=1,
        max_length=settings.INGEST_MAX_BATCH,
        help_text=f"1 to {settings.INGEST_MAX_BATCH} readings. Each is checked on its own: invalid ones are "
        "reported in the response's errors (by index) and the valid ones stored, with status 200.",
    )


class IngestErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the reading in the request.")
    field = serializers.CharField(allow_null=True)
    reason = serializers.CharField()


class IngestResponseSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Readings stored by this request.")
    duplicates = serializers.IntegerField(help_text="Valid readings already stored (same sensor and time).")
    rejected = serializers.IntegerField(help_text="Invalid readings, listed in errors.")
    errors = IngestErrorSerializer(many=True)


class RangeQuerySerializer(serializers.Serializer):
    # "from" is a Python keyword: the fields are declared through the class namespace.
    vars()["from"] = serializers.DateTimeField(
        required=False, help_text="Inclusive lower bound (ISO 8601). Must be earlier than `to` (else 400)."
    )
    vars()["to"] = serializers.DateTimeField(required=False, help_text="Exclusive upper bound (ISO 8601).")

    def validate(self, attrs):
        if attrs.get("from") and attrs.get("to") and attrs["from"] >= attrs["to"]:
            raise serializers.ValidationError({"to": "Must be later than 'from'."})
        return attrs


class AggregateQuerySerializer(RangeQuerySerializer):
    bucket = serializers.ChoiceField(choices=list(BUCKETS), default="1h")
    agg = serializers.CharField(
        default="avg", allow_blank=True, help_text=f"Comma-separated, any of: {', '.join(AGGREGATES)}. Default avg."
    )
    fill = serializers.ChoiceField(
        choices=["none", "null", "previous"],
        default="none",
        help_text="Empty buckets: left out (none), present with nulls (null), or carrying the last values (previous).",
    )

    def validate_agg(self, value):
        # Exactly the schema's form (an array, comma-separated): names, no spaces or empty parts.
        if value == "":  # an empty array: the default
            return ["avg"]
        aggs = value.split(",")
        unknown = sorted(set(aggs) - set(AGGREGATES))
        if unknown:
            got = ", ".join(repr(name) for name in unknown)
            raise serializers.ValidationError(f"Choose from {', '.join(AGGREGATES)}, comma-separated; got {got}.")
        return list(dict.fromkeys(aggs))


class LatestSerializer(serializers.Serializer):
    """One sensor's newest reading and state (documents the shape built by readings.selectors.sensor_state)."""

    sensor_id = serializers.CharField()
    asset_code = serializers.CharField()
    sensor_type = serializers.CharField()
    unit = serializers.CharField()
    status = serializers.CharField()
    time = serializers.DateTimeField(allow_null=True)
    value = serializers.FloatField(allow_null=True)
    quality = serializers.FloatField(allow_null=True)
    age_seconds = serializers.FloatField(allow_null=True, help_text="Seconds since the newest reading.")
    connectivity = serializers.ChoiceField(
        choices=["online", "stale", "offline", "no_data"],
        help_text="online: within 3 expected intervals; stale: within 10; offline: older; no_data: no readings.",
    )
    out_of_range = serializers.BooleanField(allow_null=True)


class FleetCountsSerializer(serializers.Serializer):
    online = serializers.IntegerField(required=False)
    stale = serializers.IntegerField(required=False)
    offline = serializers.IntegerField(required=False)
    no_data = serializers.IntegerField(required=False)
    out_of_range = serializers.IntegerField()
    total = serializers.IntegerField()


class FleetStatusSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    counts = FleetCountsSerializer()
    sensors = LatestSerializer(many=True)


class AggregateBucketSerializer(serializers.Serializer):
    bucket = serializers.DateTimeField(help_text="Start of the bucket.")
    avg = serializers.FloatField(required=False, allow_null=True)
    min = serializers.FloatField(required=False, allow_null=True)
    max = serializers.FloatField(required=False, allow_null=True)
    count = serializers.IntegerField(required=False)
    first = serializers.FloatField(required=False, allow_null=True)
    last = serializers.FloatField(required=False, allow_null=True)


class AggregatesResponseSerializer(serializers.Serializer):
    sensor_id = serializers.CharField()
    unit = serializers.CharField()
    vars()["from"] = serializers.DateTimeField()
    vars()["to"] = serializers.DateTimeField()
    bucket = serializers.CharField()
    agg = serializers.ListField(child=serializers.CharField())
    buckets = AggregateBucketSerializer(many=True)

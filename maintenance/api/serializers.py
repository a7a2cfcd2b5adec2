from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from maintenance.choices import FindingOutcome, WorkOrderPriority, WorkOrderStatus
from maintenance.models import Attachment, Finding, WorkOrder, WorkOrderEvent
from readings.choices import FaultKind
from sensors.api.serializers import StrictCharField, StrictIntegerField
from smartmaint.api.filters import MAX_BIGINT

FAULT_KINDS = [(value, label) for value, label in FaultKind.choices if value != FaultKind.NORMAL]


class WorkOrderSerializer(serializers.ModelSerializer):
    asset_code = serializers.CharField(source="asset.code", read_only=True)
    site = serializers.CharField(source="asset.site", read_only=True)
    sensor_id = serializers.CharField(source="sensor.sensor_id", read_only=True, allow_null=True, default=None)
    assignee_username = serializers.CharField(source="assignee.username", read_only=True, allow_null=True, default=None)
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = WorkOrder
        fields = [
            "id",
            "title",
            "description",
            "asset",
            "asset_code",
            "site",
            "sensor_id",
            "priority",
            "status",
            "assignee",
            "assignee_username",
            "due_at",
            "overdue",
            "origin",
            "alert",
            "anomaly",
            "created_at",
            "assigned_at",
            "started_at",
            "on_hold_at",
            "done_at",
            "cancelled_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.BooleanField())
    def get_overdue(self, obj) -> bool:
        from django.utils import timezone

        return obj.is_active and obj.due_at < timezone.now()


class PrimaryKeyInteger(StrictIntegerField):
    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_BIGINT)
        super().__init__(**kwargs)


class WorkOrderCreateSerializer(serializers.Serializer):
    """By hand (asset and title), or from an alert or anomaly (pre-filled from it; the rest is ignored)."""

    alert = PrimaryKeyInteger(required=False, help_text="Raise from this alert (pre-filled, linked both ways).")
    anomaly = PrimaryKeyInteger(required=False, help_text="Raise from this anomaly.")
    asset = PrimaryKeyInteger(required=False, help_text="The asset (by hand).")
    sensor_id = StrictCharField(required=False, max_length=64, help_text="A sensor of the asset (optional).")
    title = StrictCharField(required=False, max_length=200)
    description = StrictCharField(required=False, allow_blank=True, max_length=10_000, default="")
    priority = serializers.ChoiceField(choices=WorkOrderPriority.choices, required=False)
    assignee = PrimaryKeyInteger(required=False, help_text="A user ID: a technician or manager of the asset's site.")


class WorkOrderUpdateSerializer(serializers.Serializer):
    """A status change (along the allowed transitions), a new assignee (null: nobody), or edits by a manager."""

    status = serializers.ChoiceField(choices=WorkOrderStatus.choices, required=False)
    assignee = PrimaryKeyInteger(required=False, allow_null=True)
    note = StrictCharField(
        required=False, allow_blank=True, max_length=10_000, help_text="Said with the status change."
    )
    title = StrictCharField(required=False, max_length=200)
    description = StrictCharField(required=False, allow_blank=True, max_length=10_000)
    priority = serializers.ChoiceField(choices=WorkOrderPriority.choices, required=False)


class WorkOrderEventSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True, allow_null=True, default=None)
    assignee = serializers.CharField(source="assignee.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = WorkOrderEvent
        fields = ["id", "kind", "at", "user", "text", "from_status", "to_status", "assignee"]
        read_only_fields = fields


class CommentCreateSerializer(serializers.Serializer):
    text = StrictCharField(max_length=10_000)


class AttachmentSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.CharField(source="uploaded_by.username", read_only=True, allow_null=True, default=None)
    url = serializers.SerializerMethodField(help_text="Where to download it (answers with the file or a signed link).")

    class Meta:
        model = Attachment
        fields = ["id", "name", "content_type", "size", "uploaded_by", "uploaded_at", "url"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_url(self, obj) -> str:
        return reverse("v1:work-order-attachment-file", args=[obj.work_order_id, obj.pk])


class AttachmentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text=f"A photo or document: at most {settings.ATTACHMENT_MAX_BYTES:,} bytes, of type "
        f"{', '.join(settings.ATTACHMENT_CONTENT_TYPES)}."
    )


class FindingSerializer(serializers.ModelSerializer):
    recorded_by = serializers.CharField(source="recorded_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Finding
        fields = [
            "outcome",
            "fault_kind",
            "fault_start",
            "fault_end",
            "cause",
            "action",
            "time_spent_minutes",
            "parts_used",
            "label",
            "recorded_by",
            "recorded_at",
        ]
        read_only_fields = fields


class UTCDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time as UTC, from READINGS_MIN_TIME on: an offset PostgreSQL cannot take, or year 1, is
    a 400 here rather than a database error."""

    def to_internal_value(self, value):
        from datetime import UTC

        parsed = super().to_internal_value(value)
        try:
            parsed = parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise serializers.ValidationError("This date-time is out of range.", code="invalid") from None
        if parsed < settings.READINGS_MIN_TIME:
            raise serializers.ValidationError(f"Must be after {settings.READINGS_MIN_TIME:%Y-%m-%d}.", code="invalid")
        return parsed


class FindingCreateSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=FindingOutcome.choices)
    fault_kind = serializers.ChoiceField(choices=FAULT_KINDS, required=False, help_text="For a confirmed fault.")
    fault_start = UTCDateTimeField(required=False, help_text="When the fault started (required for a confirmed fault).")
    fault_end = UTCDateTimeField(required=False, help_text="When it ended (default: the alert's end).")
    cause = StrictCharField(required=False, allow_blank=True, max_length=10_000, default="")
    action = StrictCharField(required=False, allow_blank=True, max_length=10_000, default="")
    time_spent_minutes = StrictIntegerField(required=False, min_value=0, max_value=1_000_000, default=0)
    parts_used = StrictCharField(required=False, allow_blank=True, max_length=10_000, default="")

    def validate(self, attrs):
        if attrs["outcome"] == FindingOutcome.CONFIRMED_FAULT:
            missing = {
                name: ["Required for a confirmed fault."] for name in ("fault_kind", "fault_start") if name not in attrs
            }
            if missing:
                raise serializers.ValidationError(missing)
        start, end = attrs.get("fault_start"), attrs.get("fault_end")
        if start and end and end < start:
            raise serializers.ValidationError({"fault_end": ["Must not come before fault_start."]})
        return attrs

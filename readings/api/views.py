"""Readings API: ingest, ranges (JSON with cursor pagination, or streamed CSV), aggregates, latest, fleet status,
fault labels."""

from __future__ import annotations

from collections import Counter

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from rest_framework import exceptions, generics, pagination, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from readings.aggregates import AGGREGATES, BUCKETS, MAX_BUCKETS, TooManyBuckets, readings_buckets
from readings.api.renderers import CSVRenderer
from readings.api.serializers import (
    AggregateQuerySerializer,
    AggregatesResponseSerializer,
    FaultLabelSerializer,
    FleetStatusSerializer,
    IngestBatchSerializer,
    IngestResponseSerializer,
    LatestSerializer,
    RangeQuerySerializer,
    ReadingSerializer,
)
from readings.exports import ExportsBusy, readings_csv_response
from readings.filtersets import FaultLabelFilterSet
from readings.selectors import fault_labels_list, fleet_status, fleet_status_json, readings_in_range
from readings.services import readings_ingest
from sensors.api.permissions import CanIngest, CanReadReadings, request_key
from sensors.models import Sensor
from sensors.selectors import sensors_visible
from smartmaint.api.pagination import page_number, query_value


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


@extend_validation_errors(["invalid"], field_name="readings", methods=["post"])
class IngestView(APIView):
    """Store a batch of readings; each invalid reading is reported by index, the valid ones are kept."""

    permission_classes = [CanIngest]
    # JSON only (gzip-encoded or chunked bodies are decoded before this, see smartmaint.request_body): a form or
    # multipart body gets 415, and the schema lists application/json alone.
    parser_classes = [JSONParser]

    @extend_schema(
        request=IngestBatchSerializer,
        responses={200: IngestResponseSerializer, 413: OpenApiResponse(description="Body larger than the limit.")},
        summary="Ingest a batch of readings",
    )
    def post(self, request):
        # Refuse an oversized body before reading or parsing any of it.
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit() or int(length) > settings.INGEST_MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The body must be at most {settings.INGEST_MAX_BODY_BYTES} bytes; split the batch.")
        data = request.data
        items = data.get("readings") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise serializers.ValidationError({"readings": ["Required: a list of readings."]})
        if not 1 <= len(items) <= settings.INGEST_MAX_BATCH:
            raise serializers.ValidationError(
                {"readings": [f"Send from 1 to {settings.INGEST_MAX_BATCH} readings per request; got {len(items)}."]}
            )
        result = readings_ingest(
            items=items,
            sensors=sensors_visible(key=request_key(request), user=request.user),
            now=timezone.now(),
            max_future_skew=settings.INGEST_MAX_FUTURE_SKEW,
        )
        return Response(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "rejected": result.rejected,
                "errors": result.errors,
            }
        )


class ExportsBusyError(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Too many CSV exports are being streamed; retry after the time in Retry-After."
    default_code = "exports_busy"


class SensorMixin:
    permission_classes = [CanReadReadings]

    def get_sensor(self):
        # Once per request: the queryset and the CSV stream both need it.
        if not hasattr(self, "_sensor"):
            visible = sensors_visible(key=request_key(self.request), user=self.request.user)
            self._sensor = get_object_or_404(visible, sensor_id=self.kwargs["sensor_id"])
        return self._sensor

    def range_query(self, serializer_class=RangeQuerySerializer) -> dict:
        # A plain dict, not the QueryDict: DRF reads a blank form value of an optional field as absent, so `to=`
        # would silently mean "no bound"; in a query string it is an invalid date-time (400), as the schema says.
        data = {}
        for name in serializer_class().fields:
            if (value := query_value(self.request, name)) is not None:
                data[name] = value
        query = serializer_class(data=data)
        query.is_valid(raise_exception=True)
        return query.validated_data


class ReadingCursorPagination(pagination.CursorPagination):
    ordering = "time"
    page_size = 500
    page_size_query_param = "limit"
    max_page_size = 10_000

    def get_page_size(self, request):
        # Strict like the other lists' limit (smartmaint.api.pagination): `limit=abc` is a 400, not 500 rows.
        size = page_number(request, self.page_size_query_param, minimum=1)
        return self.page_size if size is None else min(size, self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
                parameter["description"] = (
                    f"Number of results per page, default {self.page_size}; values above {self.max_page_size:,} "
                    f"are capped at {self.max_page_size:,}."
                )
        return parameters

    def decode_cursor(self, request):
        """The cursor, checked: a tampered one is the client's error (400), never a query on garbage (500)."""
        query_value(request, self.cursor_query_param)  # given twice: a 400
        invalid = serializers.ValidationError({"cursor": ["Invalid cursor: use the next or previous link as given."]})
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            raise invalid from None
        if cursor is not None and cursor.position is not None:
            try:
                position = parse_datetime(cursor.position)
            except ValueError:  # well formed, but no such date (month 13)
                position = None
            if position is None:
                raise invalid
        return cursor


@extend_validation_errors(["invalid"], field_name="from")
@extend_validation_errors(["invalid"], field_name="to")
@extend_validation_errors(["invalid"], field_name="ordering")
@extend_validation_errors(["invalid"], field_name="cursor")
@extend_validation_errors(["invalid"], field_name="limit")
@extend_schema(
    parameters=[
        RangeQuerySerializer,
        OpenApiParameter("ordering", OpenApiTypes.STR, enum=["time", "-time"], description="Default: time."),
    ],
    responses={
        (200, "application/json"): ReadingSerializer(many=True),
        (200, "text/csv"): OpenApiResponse(
            OpenApiTypes.STR,
            description="With ?format=csv or Accept: text/csv: the whole range, streamed (chunked), one line per "
            "reading: header `sensor_id,time,value,quality`, then rows in `ordering`. A download that ends "
            "without a transport error is complete; one cut off halfway ends in a connection reset "
            "(docs/api.md). Errors are JSON in the usual shape, whatever the format asked for.",
        ),
    },
    summary="Readings of a sensor in a time range (JSON pages, or the whole range as CSV with ?format=csv)",
    description="JSON: cursor pages (`next`/`previous` links). CSV (`?format=csv` or `Accept: text/csv`): the "
    "whole range, streamed (chunked), header `sensor_id,time,value,quality` then one row per reading in "
    "`ordering`. A download that ends without a transport error is complete; one cut off halfway ends in a "
    "connection reset. 503 with Retry-After when the server streams too many exports. Errors are JSON in the "
    "usual shape, whatever the format asked for.",
)
class SensorReadingsView(SensorMixin, generics.ListAPIView):
    serializer_class = ReadingSerializer
    pagination_class = ReadingCursorPagination
    renderer_classes = [JSONRenderer, CSVRenderer]
    filter_backends = []

    def handle_exception(self, exc):
        # Errors keep the API's JSON shape even when CSV was asked for: a client parsing the body of a 4xx
        # gets the same document whatever the format, and the schema can say so.
        if (
            getattr(self.request, "accepted_renderer", None) is not None
            and self.request.accepted_renderer.format == "csv"
        ):
            self.request.accepted_renderer = JSONRenderer()
            self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)

    def get_queryset(self):
        query = self.range_query()
        return readings_in_range(sensor=self.get_sensor(), start=query.get("from"), end=query.get("to"))

    def get_ordering(self) -> str:
        ordering = query_value(self.request, "ordering")
        ordering = "time" if ordering is None else ordering
        if ordering not in ("time", "-time"):
            raise serializers.ValidationError({"ordering": ["Use time or -time."]})
        return ordering

    def paginate_queryset(self, queryset):
        self.paginator.ordering = self.get_ordering()
        return super().paginate_queryset(queryset)

    def list(self, request, *args, **kwargs):
        if request.accepted_renderer.format == "csv":
            return self.stream_csv()
        return super().list(request, *args, **kwargs)

    def stream_csv(self):
        sensor = self.get_sensor()
        readings = self.get_queryset().order_by(self.get_ordering())
        try:
            return readings_csv_response(
                parts=[(sensor.sensor_id, readings)], filename=f"{sensor.sensor_id}-readings.csv"
            )
        except ExportsBusy as exc:
            error = ExportsBusyError()
            error.wait = exc.retry_after
            raise error from exc


@extend_validation_errors(["invalid"], field_name="from")
@extend_validation_errors(["invalid"], field_name="to")
@extend_validation_errors(["invalid", "invalid_choice"], field_name="bucket")
@extend_validation_errors(["invalid"], field_name="agg")
@extend_validation_errors(["invalid_choice"], field_name="fill")
@extend_schema(
    parameters=[
        AggregateQuerySerializer,
        # The serializer reads a string; the schema says what it must hold: names from a list, comma-separated.
        OpenApiParameter(
            "agg",
            {"type": "array", "items": {"type": "string", "enum": list(AGGREGATES)}},
            style="form",
            explode=False,
            default=["avg"],
            description="Aggregates to compute, comma-separated (e.g. avg,min,max). Absent or empty: avg.",
        ),
        OpenApiParameter(
            "from",
            OpenApiTypes.DATETIME,
            description="Inclusive lower bound (ISO 8601). Must be earlier than `to`. Default: 24 buckets before `to`.",
        ),
        OpenApiParameter("to", OpenApiTypes.DATETIME, description="Exclusive upper bound (ISO 8601). Default: now."),
    ],
    responses=AggregatesResponseSerializer,
    summary="Time-bucketed aggregates of a sensor's readings",
    description=f"At most {MAX_BUCKETS:,} buckets per request: `(to - from) / bucket` must not exceed it.",
)
class SensorAggregatesView(SensorMixin, APIView):
    error_descriptions = {
        400: f"Invalid parameters; `from` not earlier than `to` (attr `from`); or a range of more than "
        f"{MAX_BUCKETS:,} buckets (attr `bucket`: the message names a wider bucket that fits)."
    }

    def get(self, request, sensor_id):
        sensor = self.get_sensor()
        query = self.range_query(AggregateQuerySerializer)
        end = query.get("to") or timezone.now()
        start = query.get("from") or end - BUCKETS[query["bucket"]] * 24
        if start >= end:
            raise serializers.ValidationError({"from": ["Must be earlier than 'to'."]})
        try:
            buckets = readings_buckets(
                sensor_pk=sensor.pk,
                start=start,
                end=end,
                bucket=BUCKETS[query["bucket"]],
                aggs=query["agg"],
                fill=None if query["fill"] == "none" else query["fill"],
            )
        except TooManyBuckets as exc:
            raise serializers.ValidationError({"bucket": [str(exc)]}) from exc
        return Response(
            {
                "sensor_id": sensor.sensor_id,
                "unit": sensor.unit,
                "from": start,
                "to": end,
                "bucket": query["bucket"],
                "agg": query["agg"],
                "buckets": buckets,
            }
        )


@extend_schema(responses=LatestSerializer, summary="The newest reading of a sensor, its age and range status")
class SensorLatestView(SensorMixin, APIView):
    def get(self, request, sensor_id):
        sensor = self.get_sensor()
        [state] = fleet_status(sensors=Sensor.objects.filter(pk=sensor.pk))
        return Response(state)


@extend_schema(
    responses=FleetStatusSerializer,
    summary="Every visible sensor: newest reading, connectivity (online, stale, offline) and range status",
)
class FleetStatusView(SensorMixin, APIView):
    def get(self, request):
        sensors = sensors_visible(key=request_key(request), user=request.user)
        if isinstance(request.accepted_renderer, JSONRenderer) and "indent" not in request.accepted_media_type:
            # The body pre-serialised and cached (readings.selectors.fleet_status_json): the same bytes as below.
            return HttpResponse(fleet_status_json(sensors=sensors), content_type="application/json")
        states = fleet_status(sensors=sensors)
        counts = Counter(state["connectivity"] for state in states)
        counts["out_of_range"] = sum(1 for state in states if state["out_of_range"])
        counts["total"] = len(states)
        return Response({"generated_at": timezone.now(), "counts": counts, "sensors": states})


@extend_schema(
    summary="Ground truth: periods in which a sensor's signal is known to be faulty (injected by seed_data or "
    "labelled by staff), oldest first",
)
class FaultLabelListView(generics.ListAPIView):
    """For integrators who evaluate their own models: the labels of the sensors the caller may see."""

    permission_classes = [CanReadReadings]
    serializer_class = FaultLabelSerializer
    filterset_class = FaultLabelFilterSet
    ordering_fields = ["start", "end"]
    ordering = ["start"]

    def get_queryset(self):
        return fault_labels_list(sensors=sensors_visible(key=request_key(self.request), user=self.request.user))

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        # Labels of different sensors share start times: the primary key breaks ties, so that limit/offset
        # pages neither repeat nor skip a label.
        return queryset.order_by(*queryset.query.order_by, "pk")

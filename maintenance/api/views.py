"""Work orders over the API: list, create (by hand or from an alert or anomaly), read, status and assignee
changes under the workflow's rules, comments, attachments (multipart) and the finding."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from maintenance import services
from maintenance.api.permissions import WorkOrderPermission
from maintenance.api.serializers import (
    AttachmentSerializer,
    AttachmentUploadSerializer,
    CommentCreateSerializer,
    FindingCreateSerializer,
    FindingSerializer,
    WorkOrderCreateSerializer,
    WorkOrderEventSerializer,
    WorkOrderSerializer,
    WorkOrderUpdateSerializer,
)
from maintenance.choices import WorkOrderEventKind, WorkOrderPriority
from maintenance.filtersets import WorkOrderFilterSet
from maintenance.models import Attachment, Finding, WorkOrder
from maintenance.selectors import work_order_can_manage, work_order_can_work_on, work_orders_visible
from maintenance.views import attachment_response
from mlops.models import Alert, Anomaly
from sensors.models import Sensor
from sensors.selectors import assets_for_user, within_user_sites


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "transition"
    default_detail = "Not allowed in the work order's current status."


def _service_error(exc: ValidationError):
    """A workflow refusal: 409 for a transition the status does not allow, 400 for bad input."""
    message = " ".join(exc.messages)
    if exc.code == "transition":
        return Conflict(message)
    return exceptions.ValidationError({"detail": [message]})


CONFLICT = OpenApiResponse(description="Not allowed in the work order's current status (the detail says why).")
FORBIDDEN = OpenApiResponse(description="Not yours to change: technicians act on the work orders assigned to them.")


@extend_schema_view(
    list=extend_schema(summary="Work orders of the caller's sites, most urgent first (priority, then due date)"),
    retrieve=extend_schema(summary="A work order"),
    create=extend_schema(
        request=WorkOrderCreateSerializer,
        responses={201: WorkOrderSerializer, 200: WorkOrderSerializer, 409: CONFLICT},
        summary="Raise a work order by hand, or from an alert or anomaly (200 with the one it already has)",
    ),
    partial_update=extend_schema(
        request=WorkOrderUpdateSerializer,
        responses={200: WorkOrderSerializer, 403: FORBIDDEN, 409: CONFLICT},
        summary="Change status (allowed transitions only), assignee, or a manager's edits",
    ),
)
class WorkOrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [WorkOrderPermission]
    serializer_class = WorkOrderSerializer
    filterset_class = WorkOrderFilterSet
    parser_classes = [JSONParser]
    queryset = WorkOrder.objects.none()  # per caller: get_queryset
    lookup_value_regex = "[0-9]{1,18}"
    ordering_fields = ["priority", "due_at", "created_at", "status"]
    ordering = ["priority", "due_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return work_orders_visible(user=self.request.user)

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        return queryset.order_by(*queryset.query.order_by, "pk")

    def _work_order(self, *, work: bool = False) -> WorkOrder:
        work_order = self.get_object()
        if work and not work_order_can_work_on(user=self.request.user, work_order=work_order):
            raise exceptions.PermissionDenied(FORBIDDEN.description)
        return work_order

    def create(self, request):
        body = WorkOrderCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = request.user
        try:
            if "alert" in data:
                alert = get_object_or_404(
                    within_user_sites(Alert.objects.all(), user, site="sensor__asset__site"), pk=data["alert"]
                )
                work_order, created = services.work_order_raise_from_alert(alert=alert, user=user)
            elif "anomaly" in data:
                anomaly = get_object_or_404(
                    within_user_sites(Anomaly.objects.all(), user, site="sensor__asset__site"), pk=data["anomaly"]
                )
                work_order, created = services.work_order_raise_from_anomaly(anomaly=anomaly, user=user)
            else:
                missing = {
                    name: ["Required unless alert or anomaly is given."]
                    for name in ("asset", "title")
                    if name not in data
                }
                if missing:
                    raise exceptions.ValidationError(missing)
                asset = assets_for_user(user=user).filter(pk=data["asset"]).first()
                if asset is None:
                    raise exceptions.ValidationError({"asset": ["No such asset in your sites."]})
                sensor = None
                if "sensor_id" in data:
                    sensor = Sensor.objects.filter(sensor_id=data["sensor_id"], asset=asset).first()
                    if sensor is None:
                        raise exceptions.ValidationError({"sensor_id": ["No such sensor on this asset."]})
                work_order = services.work_order_create(
                    asset=asset,
                    sensor=sensor,
                    title=data["title"],
                    description=data.get("description", ""),
                    priority=data.get("priority", WorkOrderPriority.MEDIUM),
                    user=user,
                )
                created = True
            if "assignee" in data and created:
                services.work_order_assign(work_order=work_order, assignee=self._assignee(data["assignee"]), user=user)
        except ValidationError as exc:
            raise _service_error(exc) from exc
        work_order = self.get_queryset().get(pk=work_order.pk)
        return Response(
            WorkOrderSerializer(work_order).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    def _assignee(self, pk):
        if pk is None:
            return None
        assignee = get_user_model().objects.filter(pk=pk, is_active=True).first()
        if assignee is None:
            raise exceptions.ValidationError({"assignee": ["No such active user."]})
        return assignee

    def partial_update(self, request, pk=None):
        work_order = self._work_order()
        body = WorkOrderUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = request.user
        manager = work_order_can_manage(user=user, work_order=work_order)
        if not work_order_can_work_on(user=user, work_order=work_order):
            raise exceptions.PermissionDenied(FORBIDDEN.description)
        edits = {name: data[name] for name in ("title", "description", "priority") if name in data}
        if (edits or "assignee" in data) and not manager:
            raise exceptions.PermissionDenied("Only maintenance managers assign and edit work orders.")
        try:
            if edits:
                work_order = services.work_order_edit(work_order=work_order, user=user, **edits)
            if "assignee" in data:
                work_order = services.work_order_assign(
                    work_order=work_order, assignee=self._assignee(data["assignee"]), user=user
                )
            if "status" in data:
                work_order = services.work_order_set_status(
                    work_order=work_order, status=data["status"], user=user, note=data.get("note", "")
                )
        except ValidationError as exc:
            raise _service_error(exc) from exc
        return Response(WorkOrderSerializer(self.get_queryset().get(pk=work_order.pk)).data)

    @extend_schema(
        responses={200: WorkOrderEventSerializer(many=True)}, summary="The work order's timeline, oldest first"
    )
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def timeline(self, request, pk=None):
        work_order = self._work_order()
        events = work_order.events.select_related("user", "assignee")
        return Response(WorkOrderEventSerializer(events, many=True).data)

    @extend_schema(
        methods=["get"], responses={200: WorkOrderEventSerializer(many=True)}, summary="The work order's comments"
    )
    @extend_schema(
        methods=["post"],
        request=CommentCreateSerializer,
        responses={201: WorkOrderEventSerializer, 403: FORBIDDEN},
        summary="Comment on a work order",
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def comments(self, request, pk=None):
        if request.method == "GET":
            work_order = self._work_order()
            comments = work_order.events.filter(kind=WorkOrderEventKind.COMMENT).select_related("user", "assignee")
            return Response(WorkOrderEventSerializer(comments, many=True).data)
        work_order = self._work_order(work=True)
        body = CommentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            event = services.work_order_comment(
                work_order=work_order, user=request.user, text=body.validated_data["text"]
            )
        except ValidationError as exc:
            raise _service_error(exc) from exc
        return Response(WorkOrderEventSerializer(event).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["get"], responses={200: AttachmentSerializer(many=True)}, summary="The work order's files")
    @extend_schema(
        methods=["post"],
        request={"multipart/form-data": AttachmentUploadSerializer},
        responses={201: AttachmentSerializer, 403: FORBIDDEN},
        summary="Attach a photo or document (multipart upload)",
    )
    @action(
        detail=True,
        methods=["get", "post"],
        pagination_class=None,
        filterset_class=None,
        parser_classes=[MultiPartParser, FormParser],
    )
    def attachments(self, request, pk=None):
        if request.method == "GET":
            work_order = self._work_order()
            return Response(AttachmentSerializer(work_order.attachments.select_related("uploaded_by"), many=True).data)
        work_order = self._work_order(work=True)
        body = AttachmentUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            attachment = services.work_order_attach(
                work_order=work_order, user=request.user, file=body.validated_data["file"]
            )
        except ValidationError as exc:
            raise exceptions.ValidationError({"file": [" ".join(exc.messages)]}) from exc
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(description="The file (local storage)."),
            302: OpenApiResponse(description="A short-lived signed link to the file (S3)."),
        },
        summary="Download an attachment",
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=r"attachments/(?P<attachment_pk>[0-9]{1,18})/file",
        url_name="attachment-file",
        pagination_class=None,
        filterset_class=None,
    )
    def attachment_file(self, request, pk=None, attachment_pk=None):
        work_order = self._work_order()
        attachment = get_object_or_404(Attachment, pk=attachment_pk, work_order=work_order)
        return attachment_response(attachment)

    @extend_schema(
        methods=["get"],
        responses={200: FindingSerializer, 404: OpenApiResponse(description="No finding recorded yet.")},
        summary="The work order's finding",
    )
    @extend_schema(
        methods=["post"],
        request=FindingCreateSerializer,
        responses={201: FindingSerializer, 403: FORBIDDEN, 409: CONFLICT},
        summary="Record the finding (a confirmed fault or a false alarm); completes the work order",
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def finding(self, request, pk=None):
        if request.method == "GET":
            work_order = self._work_order()
            return Response(FindingSerializer(get_object_or_404(Finding, work_order=work_order)).data)
        work_order = self._work_order(work=True)
        body = FindingCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            finding = services.work_order_record_finding(
                work_order=work_order, user=request.user, **body.validated_data
            )
        except ValidationError as exc:
            raise _service_error(exc) from exc
        return Response(FindingSerializer(finding).data, status=status.HTTP_201_CREATED)

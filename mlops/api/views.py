"""Scoring a sensor's recent readings, and listing anomalies."""

import logging
from datetime import timedelta

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops.api.serializers import AnomalySerializer, ScoreRequestSerializer, ScoreResponseSerializer
from mlops.filtersets import AnomalyFilterSet
from mlops.registry import MLflowUnavailable
from mlops.scoring import NoChampion
from mlops.selectors import anomalies_list
from mlops.services import readings_score
from sensors.api.permissions import CanReadReadings, CanScore, request_key
from sensors.selectors import sensors_visible

logger = logging.getLogger(__name__)


class ServiceUnavailable(exceptions.APIException):
    """The model registry cannot be asked. Says no more to API clients: its address and error are internal."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "mlflow_unavailable"
    default_detail = "The model registry is unavailable; retry later."

    def __init__(self):
        super().__init__()
        # Read by the exception handler, which sends it as Retry-After.
        self.wait = max(1, settings.MLFLOW_RETRY_AFTER)


class NoModel(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "no_champion"


class SensorScoreView(APIView):
    """Score a sensor's recent readings with its type's champion model; anomalies found are stored and returned."""

    permission_classes = [CanScore]

    @extend_schema(
        request=ScoreRequestSerializer,
        responses={
            200: ScoreResponseSerializer,
            409: OpenApiResponse(description="No champion model for this sensor type yet."),
            503: OpenApiResponse(
                description="The model registry (MLflow) cannot be reached; retry after Retry-After seconds."
            ),
        },
        summary="Score a sensor's recent readings",
    )
    def post(self, request, sensor_id):
        sensor = get_object_or_404(sensors_visible(key=request_key(request), user=request.user), sensor_id=sensor_id)
        body = ScoreRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        end = timezone.now()
        start = end - timedelta(minutes=body.validated_data["minutes"])
        try:
            result = readings_score(sensors=[sensor], start=start, end=end)
        except NoChampion as exc:
            raise NoModel(str(exc)) from exc
        except MLflowUnavailable as exc:
            # The cause (MLflow's address, its error) goes to the server log only.
            logger.warning("Scoring %s: %s", sensor.sensor_id, exc)
            raise ServiceUnavailable() from exc
        return Response(
            {
                "model_name": result.model_name,
                "model_version": result.model_version,
                "windows": result.windows,
                "anomalies": AnomalySerializer(result.anomalies, many=True).data,
            }
        )


@extend_schema(summary="Anomalies found by the models, newest first")
class AnomalyListView(generics.ListAPIView):
    permission_classes = [CanReadReadings]
    serializer_class = AnomalySerializer
    filterset_class = AnomalyFilterSet
    ordering_fields = ["start", "score"]
    ordering = ["-start"]

    def get_queryset(self):
        return anomalies_list(sensors=sensors_visible(key=request_key(self.request), user=self.request.user))

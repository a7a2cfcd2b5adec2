"""Scoring a sensor's recent readings, and listing anomalies."""

from datetime import timedelta

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


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "mlflow_unavailable"


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
            503: OpenApiResponse(description="MLflow cannot be reached."),
        },
        summary="Score a sensor's recent readings",
    )
    def post(self, request, sensor_id):
        sensor = get_object_or_404(sensors_visible(key=request_key(request)), sensor_id=sensor_id)
        body = ScoreRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        end = timezone.now()
        start = end - timedelta(minutes=body.validated_data["minutes"])
        try:
            result = readings_score(sensors=[sensor], start=start, end=end)
        except NoChampion as exc:
            raise NoModel(str(exc)) from exc
        except MLflowUnavailable as exc:
            raise ServiceUnavailable(str(exc)) from exc
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
        return anomalies_list(sensors=sensors_visible(key=request_key(self.request)))

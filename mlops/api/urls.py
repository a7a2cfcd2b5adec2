from django.urls import path

import sensors.api.converters  # noqa: F401  (registers the sensor_id converter)
from mlops.api import views

urlpatterns = [
    path("sensors/<sensor_id:sensor_id>/score", views.SensorScoreView.as_view(), name="sensor-score"),
    path("anomalies", views.AnomalyListView.as_view(), name="anomaly-list"),
]

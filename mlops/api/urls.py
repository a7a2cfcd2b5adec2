from django.urls import path

from mlops.api import views

urlpatterns = [
    path("sensors/<str:sensor_id>/score", views.SensorScoreView.as_view(), name="sensor-score"),
    path("anomalies", views.AnomalyListView.as_view(), name="anomaly-list"),
]

from django.urls import path

import sensors.api.converters  # noqa: F401  (registers the sensor_id converter)
from readings.api import views

urlpatterns = [
    path("readings/ingest", views.IngestView.as_view(), name="readings-ingest"),
    path("sensors/<sensor_id:sensor_id>/readings", views.SensorReadingsView.as_view(), name="sensor-readings"),
    path("sensors/<sensor_id:sensor_id>/aggregates", views.SensorAggregatesView.as_view(), name="sensor-aggregates"),
    path("sensors/<sensor_id:sensor_id>/latest", views.SensorLatestView.as_view(), name="sensor-latest"),
    path("fleet/status", views.FleetStatusView.as_view(), name="fleet-status"),
    path("fault-labels", views.FaultLabelListView.as_view(), name="fault-label-list"),
]

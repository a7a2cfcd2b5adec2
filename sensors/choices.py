from django.db import models


class AssetCriticality(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class AssetStatus(models.TextChoices):
    OPERATIONAL = "operational", "Operational"
    DEGRADED = "degraded", "Degraded"
    MAINTENANCE = "maintenance", "Under maintenance"
    DOWN = "down", "Down"
    RETIRED = "retired", "Retired"


class SensorType(models.TextChoices):
    TEMPERATURE = "temperature", "Temperature"
    VIBRATION = "vibration", "Vibration"
    PRESSURE = "pressure", "Pressure"
    HUMIDITY = "humidity", "Humidity"
    VOLTAGE = "voltage", "Voltage"
    CURRENT = "current", "Current"
    RPM = "rpm", "Rotational speed"
    FLOW = "flow", "Flow"


class SensorStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"
    MAINTENANCE = "maintenance", "Maintenance"
    DECOMMISSIONED = "decommissioned", "Decommissioned"


class APIKeyScope(models.TextChoices):
    INGEST = "ingest", "Ingest only"
    READ = "read", "Read only"
    READ_INGEST = "read_ingest", "Read and ingest"

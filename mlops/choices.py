from django.db import models


class AlertKind(models.TextChoices):
    OUT_OF_RANGE = "out_of_range", "Outside the normal range"
    STALE = "stale", "Stale (readings late)"
    OFFLINE = "offline", "Offline (no readings)"
    ANOMALY = "anomaly", "Anomaly found by a model"


class AlertSeverity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class AlertMailState(models.TextChoices):
    """Where an alert's mail stands: claimed by one run (``sending``) so that overlapping runs never mail it twice."""

    PENDING = "pending", "Pending"
    SENDING = "sending", "Being sent"
    SENT = "sent", "Sent"
    NO_RECIPIENTS = "none", "No subscriber for its severity"


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


SEVERITY_RANK = {AlertSeverity.INFO: 0, AlertSeverity.WARNING: 1, AlertSeverity.CRITICAL: 2}


# Anomaly.kind when no known fault kind was recognised: the normal-behaviour model saw a departure from normal.
UNKNOWN_DEPARTURE = "unknown"

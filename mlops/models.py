"""What the models find (anomalies) and what staff must act on (alerts), with who gets mailed."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from mlops.choices import UNKNOWN_DEPARTURE, AlertKind, AlertMailState, AlertSeverity, AlertStatus
from sensors.models import Sensor


class Anomaly(models.Model):
    """A span of a sensor's readings that a registered model scored as anomalous."""

    sensor = models.ForeignKey(Sensor, on_delete=models.CASCADE, related_name="anomalies")
    start = models.DateTimeField()
    end = models.DateTimeField()
    score = models.FloatField(help_text="The model's anomaly probability, 0 to 1.")
    kind = models.CharField(
        max_length=32,
        default=UNKNOWN_DEPARTURE,
        help_text="What it looks like: a known fault kind the supervised model recognised, or an unknown "
        "departure from normal.",
    )
    detector = models.CharField(
        max_length=32, default="random_forest", help_text="What found it: random_forest (supervised) or normal."
    )
    explanation = models.JSONField(
        default=dict,
        blank=True,
        help_text="Why: the sensors and features that departed most, with their z-scores, and each detector's score.",
    )
    model_name = models.CharField(max_length=200)
    model_version = models.CharField(max_length=32)
    provisional = models.BooleanField(
        default=False,
        help_text="Raised before its window ended, on the readings in so far (a value frozen part-way); replaced "
        "by the window's full verdict once it is scored, or removed if that verdict is normal.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-start"]
        verbose_name_plural = "anomalies"
        constraints = [
            # Scoring the same window again with the same model version adds nothing.
            models.UniqueConstraint(
                fields=["sensor", "start", "model_name", "model_version"], name="anomaly_sensor_start_model_uniq"
            ),
            models.CheckConstraint(condition=Q(end__gte=F("start")), name="anomaly_end_after_start"),
        ]
        indexes = [
            models.Index(fields=["sensor", "-start"], name="anomaly_sensor_start_idx"),
            # The few provisional rows, found by each scheduled run of their sensors.
            models.Index(fields=["sensor"], condition=Q(provisional=True), name="anomaly_provisional_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.sensor_id} {self.start:%Y-%m-%d %H:%M} score {self.score:.2f}"


class Alert(models.Model):
    """Something staff must look at: rule-based (range, staleness) or model-based (anomalies)."""

    sensor = models.ForeignKey(Sensor, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    severity = models.CharField(max_length=16, choices=AlertSeverity.choices, default=AlertSeverity.WARNING)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN, db_index=True)
    title = models.CharField(max_length=200)
    detail = models.TextField(blank=True)
    anomaly = models.ForeignKey(Anomaly, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    opened_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True, help_text="Last time the condition was still true.")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Mail: sent once when the alert opens; failures are kept and retried. A run claims the alert
    # (``sending`` with the claim time) before it sends, so overlapping runs never mail it twice.
    notify_state = models.CharField(max_length=16, choices=AlertMailState.choices, default=AlertMailState.PENDING)
    notify_claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a run claimed the alert to mail it (a claim too old is taken back)."
    )
    notified_at = models.DateTimeField(null=True, blank=True)
    notified_to = models.JSONField(
        default=list, blank=True, help_text="Addresses the mail has reached: a retry mails only the others."
    )
    notify_attempts = models.PositiveIntegerField(default=0)
    notify_error = models.TextField(blank=True)
    notify_next_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="After failed sends: no mail run tries again before this (the wait doubles with each attempt).",
    )

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            # At most one unresolved alert per sensor and kind: a condition that
            # persists updates last_seen_at instead of opening a new alert.
            models.UniqueConstraint(
                fields=["sensor", "kind"],
                condition=~Q(status=AlertStatus.RESOLVED),
                name="alert_one_unresolved_per_sensor_kind",
            ),
        ]
        indexes = [
            # The mail runs look only for alerts still to mail: a small slice of a table that only grows.
            models.Index(
                fields=["notify_state"],
                condition=Q(notify_state__in=[AlertMailState.PENDING, AlertMailState.SENDING]),
                name="alert_mail_to_send_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"[{self.get_severity_display()}] {self.title}"


class AlertSubscription(models.Model):
    """A staff member who receives alert e-mails from a severity upwards."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_subscription")
    min_severity = models.CharField(max_length=16, choices=AlertSeverity.choices, default=AlertSeverity.WARNING)
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.get_min_severity_display()} and above)"


class ScoringRunQuerySet(models.QuerySet):
    def flagged(self):
        """Scheduled runs that scored no window while readings that should have made one had arrived."""
        return self.filter(windows=0, readings__gt=0)


class ScoringRun(models.Model):
    """One scoring pass over a sensor type: the log of ``score_readings``, the scoring job and the score API.

    A scheduled run (the job, ``score_readings`` without --from) is logged even when it scored no window, with
    ``readings``: how many readings of its sensors arrived that every window containing them was ready by the
    run's end (see ``mlops.selectors.readings_due_count``). One that scored 0 windows while that is above 0 is
    flagged: readings are being left unscored (the admin list, the dashboard, doctor's jobs line). A run on
    request (the score API, --from) is logged only when it scored windows, ``readings`` empty.

    Where the next scheduled run continues is each sensor's ``ScoringWatermark``, not this log.
    """

    sensor_type = models.CharField(max_length=16, db_index=True)
    model_name = models.CharField(max_length=200)
    model_version = models.CharField(max_length=32)
    start = models.DateTimeField()
    end = models.DateTimeField()
    windows = models.PositiveIntegerField(default=0)
    anomalies = models.PositiveIntegerField(default=0)
    readings = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Scheduled runs: readings of its sensors in its range old enough that their windows were ready "
        "(0 windows while this is above 0: flagged). Empty for runs on request.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScoringRunQuerySet.as_manager()

    class Meta:
        ordering = ["-end"]
        # Each type's latest run, for the dashboard's flags and doctor (one a minute per type is logged).
        indexes = [models.Index(fields=["sensor_type", "-end"], name="mlops_scoringrun_type_end")]

    def __str__(self) -> str:
        return f"{self.model_name} v{self.model_version} {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}"

    @property
    def flagged(self) -> bool:
        return self.windows == 0 and bool(self.readings)


class ScoringWatermark(models.Model):
    """Where scheduled scoring of one sensor continues: every window of it starting before ``scored_until`` is done.

    Per sensor, so that a sensor whose readings arrive late, or a sensor added today, neither holds back nor
    skips the others; it only moves forward (a backfill of old readings never moves it back).
    """

    sensor = models.OneToOneField(Sensor, on_delete=models.CASCADE, primary_key=True, related_name="scoring_watermark")
    scored_until = models.DateTimeField(
        help_text="The start of the sensor's first window not scored yet (the end of the last complete window scored)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.sensor_id} scored until {self.scored_until:%Y-%m-%d %H:%M}"

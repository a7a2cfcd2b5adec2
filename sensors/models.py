"""The fleet: assets (machines) and the sensors mounted on them."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from rest_framework_api_key.models import AbstractAPIKey

from sensors.choices import APIKeyScope, AssetCriticality, AssetStatus, SensorStatus, SensorType

# Asset codes and sensor IDs: also the URL pattern of sensor IDs (sensors.api.converters).
EXTERNAL_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:-]*"
# \A and \Z, not ^ and $: Python's $ also matches before a final newline, which would let "PUMP-1\n" through.
external_id_validator = RegexValidator(
    rf"\A{EXTERNAL_ID_PATTERN}\Z",
    "Use letters, digits and . _ : - only, starting with a letter or digit.",
)


class Asset(models.Model):
    """A machine or piece of equipment that carries sensors."""

    name = models.CharField(max_length=200)
    code = models.CharField(
        max_length=64, unique=True, validators=[external_id_validator], help_text="Plant-wide unique tag, e.g. PUMP-07."
    )
    site = models.CharField(max_length=100, db_index=True, help_text="Plant or site the asset belongs to.")
    location = models.CharField(max_length=200, blank=True, help_text="Line / station within the site.")
    criticality = models.CharField(max_length=16, choices=AssetCriticality.choices, default=AssetCriticality.MEDIUM)
    status = models.CharField(max_length=16, choices=AssetStatus.choices, default=AssetStatus.OPERATIONAL)
    notes = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="Free-form details: maker, model, serial, ...")
    # What normal looks like for this asset (mlops.normal): the period train_models fits it on, when staff choose one.
    baseline_start = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Start of the period of normal operation the normal-behaviour model learns from "
        "(empty: its recent history minus faults, alerts and anomalies).",
    )
    baseline_end = models.DateTimeField(null=True, blank=True, help_text="End of that period (empty: now).")
    threshold_factor = models.FloatField(
        "anomaly threshold factor",
        default=1.0,
        db_default=1.0,  # rows written by SQL (imports, other tools) get it too
        validators=[MinValueValidator(0.1), MaxValueValidator(10.0)],
        help_text="Multiplies the calibrated anomaly thresholds of this asset's sensors: above 1 flags fewer "
        "departures from normal, below 1 more.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["site", "code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"


class Sensor(models.Model):
    """A sensor on an asset, known to gateways by its stable external ``sensor_id``."""

    sensor_id = models.CharField(
        "sensor ID",
        max_length=64,
        unique=True,
        validators=[external_id_validator],
        help_text="Stable external identifier used by gateways, e.g. sensor-001.",
    )
    name = models.CharField(max_length=200, blank=True)
    # PROTECT: removing an asset must not silently take years of readings with it.
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="sensors")
    sensor_type = models.CharField("type", max_length=16, choices=SensorType.choices)
    unit = models.CharField(max_length=16, help_text="Unit of the readings, e.g. °C, mm/s, kPa.")
    status = models.CharField(max_length=16, choices=SensorStatus.choices, default=SensorStatus.ACTIVE, db_index=True)
    normal_min = models.FloatField(
        "normal range low", null=True, blank=True, help_text="Lowest value of normal operation."
    )
    normal_max = models.FloatField(
        "normal range high", null=True, blank=True, help_text="Highest value of normal operation."
    )
    sampling_interval = models.PositiveIntegerField(
        "expected sampling interval (s)",
        default=60,
        validators=[MinValueValidator(1)],
        help_text="Seconds between readings; used to tell online, stale and offline sensors apart.",
    )
    metadata = models.JSONField(default=dict, blank=True)
    threshold_factor = models.FloatField(
        "anomaly threshold factor",
        default=1.0,
        db_default=1.0,  # rows written by SQL (imports, other tools) get it too
        validators=[MinValueValidator(0.1), MaxValueValidator(10.0)],
        help_text="Multiplies the calibrated anomaly threshold of this sensor (and its asset's factor): above 1 "
        "flags fewer departures from normal, below 1 more.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sensor_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(normal_min__isnull=True) | Q(normal_max__isnull=True) | Q(normal_min__lte=F("normal_max")),
                name="sensor_normal_range_ordered",
                violation_error_message="The normal range's low end must not exceed its high end.",
            ),
            models.CheckConstraint(condition=Q(sampling_interval__gte=1), name="sensor_sampling_interval_positive"),
        ]

    def __str__(self) -> str:
        return self.sensor_id


class APIKey(AbstractAPIKey):
    """A key for a gateway or device: hashed, scoped, optionally limited to a site and/or some assets."""

    scope = models.CharField(max_length=16, choices=APIKeyScope.choices, default=APIKeyScope.INGEST)
    site = models.CharField(max_length=100, blank=True, help_text="Only assets of this site (empty: every site).")
    assets = models.ManyToManyField(
        Asset, blank=True, related_name="api_keys", help_text="Only these assets (none selected: every asset)."
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    @property
    def can_read(self) -> bool:
        return self.scope in (APIKeyScope.READ, APIKeyScope.READ_INGEST)

    @property
    def can_ingest(self) -> bool:
        return self.scope in (APIKeyScope.INGEST, APIKeyScope.READ_INGEST)


class UserSites(models.Model):
    """The sites a person sees (``Asset.site`` names), in work orders and wherever lists are scoped to sites.

    Superusers and ``all_sites`` see every site; anyone else only those listed here (none without a row).
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="site_access")
    all_sites = models.BooleanField(default=False, help_text="Sees every site, including sites added later.")
    sites = models.JSONField(default=list, blank=True, help_text='Site names, e.g. ["North Plant"].')

    class Meta:
        verbose_name = "site access"
        verbose_name_plural = "site access"

    def __str__(self) -> str:
        return f"{self.user}: {'every site' if self.all_sites else ', '.join(self.sites) or 'no site'}"

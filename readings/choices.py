from django.db import models


class FaultKind(models.TextChoices):
    SPIKE = "spike", "Spike"
    DROPOUT = "dropout", "Drop-out (no readings)"
    STUCK = "stuck", "Stuck value (flatline)"
    NOISE_BURST = "noise_burst", "Noise burst"
    LEVEL_SHIFT = "level_shift", "Level shift"
    DRIFT = "drift", "Drift"
    DEGRADATION = "degradation", "Slow degradation"
    # Not a fault: staff found nothing wrong here (a false alarm). Training reads it as normal operation.
    NORMAL = "normal", "Normal (false alarm)"


class FaultSource(models.TextChoices):
    SEED = "seed", "Injected by seed_data"
    MANUAL = "manual", "Labelled by staff"
    IMPORT = "import", "Imported with readings (import_readings)"
    STAFF = "staff", "Recorded by staff as a work order's finding"


class HoldoutShape(models.TextChoices):
    """Fault shapes that ``seed_data`` never makes (readings/holdout.py): a test of what no model was trained on."""

    DRIFT = "drift", "Slow drift inside the normal range, crossing it hours later"
    STEP = "step", "Step inside the normal range"
    VARIANCE = "variance", "Variance growing 1x to 6x, same mean"
    OSCILLATION = "oscillation", "Oscillation at a new frequency"
    FROZEN = "frozen", "Frozen value with +-1 LSB dither"
    FLATLINE = "flatline", "Exact flatline at a plausible value"
    SPIKES = "spikes", "Intermittent single spikes"
    GAP = "gap", "Gap, then readings return"

from django.db import models


class FaultKind(models.TextChoices):
    SPIKE = "spike", "Spike"
    DROPOUT = "dropout", "Drop-out (no readings)"
    STUCK = "stuck", "Stuck value (flatline)"
    NOISE_BURST = "noise_burst", "Noise burst"
    LEVEL_SHIFT = "level_shift", "Level shift"
    DRIFT = "drift", "Drift"
    DEGRADATION = "degradation", "Slow degradation"


class FaultSource(models.TextChoices):
    SEED = "seed", "Injected by seed_data"
    MANUAL = "manual", "Labelled by staff"
    IMPORT = "import", "Imported with readings (import_readings)"

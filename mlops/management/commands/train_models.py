"""``manage.py train_models``: train, evaluate and register an anomaly detector per sensor type."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from mlops import registry
from mlops.registry import MLflowUnavailable
from mlops.services import WINDOW, models_train
from sensors.choices import SensorType


def _moment(value: str, option: str):
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"{option} {value!r} is not an ISO 8601 date-time, e.g. 2026-11-01T00:00:00Z.")
    if parsed.tzinfo is None:
        raise CommandError(f"{option} needs a UTC offset, e.g. 2026-11-01T00:00:00Z.")
    return parsed


class Command(BaseCommand):
    help = (
        "Train one anomaly detector per sensor type on windowed features of the readings, evaluate it against "
        "the recorded fault labels (precision, recall, F1 logged to MLflow), register it under "
        "<MLFLOW_MODEL_PREFIX>-<type> with the alias 'challenger', and make it 'champion' when it beats the "
        "current champion's F1 (or with --promote)."
    )

    def execute(self, *args, **options):
        # A batch job: MLflow calls may wait and retry longer than in a web request (see settings).
        with registry.command_timeouts():
            return super().execute(*args, **options)

    def add_arguments(self, parser):
        parser.add_argument(
            "--types",
            default="",
            help=f"Comma-separated sensor types (default: every type with readings): {', '.join(SensorType.values)}.",
        )
        parser.add_argument("--from", dest="start", default=None, help="Train on readings from (ISO 8601).")
        parser.add_argument("--to", dest="end", default=None, help="Train on readings before (ISO 8601).")
        parser.add_argument("--window", type=int, default=WINDOW, help=f"Readings per window. Default {WINDOW}.")
        parser.add_argument("--promote", action="store_true", help="Make the new versions champion regardless.")
        parser.add_argument("--seed", type=int, default=0, help="Random seed of the model. Default 0.")

    def handle(self, *args, **options):
        types = [part.strip() for part in options["types"].split(",") if part.strip()]
        unknown = sorted(set(types) - set(SensorType.values))
        if unknown:
            raise CommandError(
                f"Unknown sensor type(s): {', '.join(unknown)}. Choose from {', '.join(SensorType.values)}."
            )
        if options["window"] < 3:
            raise CommandError("--window must be at least 3 readings.")
        start = _moment(options["start"], "--from") if options["start"] else None
        end = _moment(options["end"], "--to") if options["end"] else None
        if start and end and start >= end:
            raise CommandError("--from must be earlier than --to.")
        try:
            results = models_train(
                sensor_types=types or None,
                start=start,
                end=end,
                window=options["window"],
                promote=options["promote"],
                seed=options["seed"],
            )
        except MLflowUnavailable as exc:
            raise CommandError(str(exc)) from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for result in results:
            champion = "none" if result.champion_f1 is None else f"{result.champion_f1:.3f}"
            outcome = "champion" if result.promoted else "challenger"
            self.stdout.write(
                f"{result.model_name} v{result.version}: precision {result.scores.precision:.3f}, "
                f"recall {result.scores.recall:.3f}, F1 {result.scores.f1:.3f} "
                f"({result.scores.detected}/{result.scores.faults} faults, {result.windows} windows); "
                f"previous champion F1 {champion} -> {outcome}"
            )

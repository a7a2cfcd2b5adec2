"""``manage.py train_models``: train, evaluate and register an anomaly detector per sensor type."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from mlops.registry import MLflowUnavailable
from mlops.runs import training_run
from mlops.services import WINDOW
from sensors.choices import SensorStatus, SensorType
from sensors.models import Asset, Sensor


def _moment(value: str, option: str):
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"{option} {value!r} is not an ISO 8601 date-time, e.g. 2026-11-01T00:00:00Z.")
    if parsed.tzinfo is None:
        raise CommandError(f"{option} needs a UTC offset, e.g. 2026-11-01T00:00:00Z.")
    return parsed


def add_sensor_arguments(parser, verb: str) -> None:
    parser.add_argument(
        "--asset",
        dest="assets",
        action="append",
        default=[],
        metavar="CODE",
        help=f"{verb} the sensors of this asset (its code). Repeatable; with --sensor, both sets.",
    )
    parser.add_argument(
        "--sensor",
        dest="sensors",
        action="append",
        default=[],
        metavar="SENSOR_ID",
        help=f"{verb} this sensor (its sensor ID). Repeatable.",
    )


def chosen_sensors(asset_codes: list[str], sensor_ids: list[str], *, active_only: bool) -> list[Sensor]:
    """The sensors of ``asset_codes`` and those of ``sensor_ids`` (every sensor if neither), in pk order.

    ``active_only`` leaves out inactive sensors of the assets (or of the fleet), never one named by its ID.
    """
    missing = sorted(set(asset_codes) - set(Asset.objects.filter(code__in=asset_codes).values_list("code", flat=True)))
    if missing:
        raise CommandError(f"Unknown asset code(s): {', '.join(missing)}. Asset codes are listed in the admin.")
    named = list(Sensor.objects.filter(sensor_id__in=sensor_ids))
    missing = sorted(set(sensor_ids) - {sensor.sensor_id for sensor in named})
    if missing:
        raise CommandError(f"Unknown sensor ID(s): {', '.join(missing)}.")
    pool = Sensor.objects.filter(status=SensorStatus.ACTIVE) if active_only else Sensor.objects.all()
    if asset_codes or sensor_ids:
        pool = pool.filter(asset__code__in=asset_codes)
    return sorted({*pool, *named}, key=lambda sensor: sensor.pk)


class Command(BaseCommand):
    help = (
        "Train one anomaly detector per sensor type on windowed features of the readings (of every sensor, or of "
        "those chosen with --asset and --sensor), evaluate it against "
        "the recorded fault labels (precision, recall, F1 logged to MLflow), register it under "
        "<MLFLOW_MODEL_PREFIX>-<type> with the alias 'challenger', and make it 'champion' when it beats the "
        "current champion's F1 (or with --promote). Then fit the normal-behaviour model of each asset on a "
        "baseline of normal operation (no labels needed) and register them all as <MLFLOW_MODEL_PREFIX>-normal."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--types",
            default="",
            help=f"Comma-separated sensor types (default: every type with readings): {', '.join(SensorType.values)}.",
        )
        add_sensor_arguments(parser, "Train and evaluate on")
        parser.add_argument("--from", dest="start", default=None, help="Train on readings from (ISO 8601).")
        parser.add_argument("--to", dest="end", default=None, help="Train on readings before (ISO 8601).")
        parser.add_argument("--window", type=int, default=WINDOW, help=f"Readings per window. Default {WINDOW}.")
        parser.add_argument("--promote", action="store_true", help="Make the new versions champion regardless.")
        parser.add_argument(
            "--detector",
            choices=["all", "supervised", "normal"],
            default="all",
            help="Which models to train: the supervised detectors per sensor type (they need labelled faults), the "
            "normal-behaviour models per asset (no labels), or both (default; the supervised ones are skipped "
            "with a note when there are no labelled faults).",
        )
        parser.add_argument(
            "--baseline",
            nargs=2,
            metavar=("FROM", "TO"),
            default=None,
            help="The period of normal operation the normal-behaviour models learn from (ISO 8601). Default: the "
            "asset's baseline set in the admin, else its last NORMAL_BASELINE_DAYS days of readings minus labelled "
            "faults, alerts and anomalies.",
        )
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
        selected = None
        if options["assets"] or options["sensors"]:
            # Their peers (the other sensors of their assets) are read for the features, not trained on.
            selected = chosen_sensors(options["assets"], options["sensors"], active_only=False)
        baseline = None
        if options["baseline"]:
            baseline = tuple(_moment(value, "--baseline") for value in options["baseline"])
            if baseline[0] >= baseline[1]:
                raise CommandError("--baseline FROM must be earlier than TO.")
        # The same run as the weekly retraining task's (mlops.tasks.models_retrain).
        try:
            report = training_run(
                detector=options["detector"],
                types=types,
                sensors=selected,
                start=start,
                end=end,
                baseline=baseline,
                window=options["window"],
                promote=options["promote"],
                seed=options["seed"],
            )
        except (MLflowUnavailable, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if report.supervised_skipped:
            self.stdout.write(self.style.WARNING(f"Supervised detectors not trained: {report.supervised_skipped}"))
        for result in report.supervised:
            scores = result.scores
            delay = scores.delay_median_minutes
            delay = "" if delay is None else f", median delay {delay:.1f} min"
            # The F1 here is over the whole range (out-of-fold); the promotion compares both versions on the same
            # newest windows and says so.
            self.stdout.write(
                f"{result.model_name} v{result.version}: precision {scores.precision:.3f}, "
                f"recall {scores.recall:.3f}, F1 {scores.f1:.3f} "
                f"({scores.detected}/{scores.faults} faults{delay}, {result.windows} windows, out-of-fold); "
                f"{result.promotion} -> {'champion' if result.promoted else 'challenger'}"
            )
        if report.normal_skipped:
            self.stdout.write(self.style.WARNING(f"Normal-behaviour models not trained: {report.normal_skipped}"))
        if report.normal is not None:
            result = report.normal
            windows = sum(item["windows"] for item in result.assets.values())
            self.stdout.write(
                f"{result.model_name} v{result.version}: normal behaviour of {len(result.assets)} asset(s) learnt "
                f"from {windows} baseline windows -> champion"
            )
            for code, why in result.skipped.items():
                self.stdout.write(self.style.WARNING(f"{code}: no normal model ({why})."))

"""``manage.py import_readings``: history from a CSV file (long or wide form, gzip or not), idempotent."""

import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.management.base import BaseCommand, CommandError

from readings.choices import FaultKind
from readings.imports import ImportRefused
from readings.services import ANY_COLUMN, readings_import
from sensors.choices import SensorType


def _pair(value: str, *, option: str) -> tuple[str, str]:
    # Split on the last "=": sensor IDs, types, kinds and units have none, column names might.
    name, sep, target = value.rpartition("=")
    if not sep or not name.strip() or not target.strip():
        raise CommandError(f"{option} {value!r}: expected COLUMN=VALUE.")
    return name.strip(), target.strip()


def _map_file(path: str) -> dict[str, str]:
    mapping = {}
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise CommandError(f"Cannot read --map-file {path}: {exc.strerror or exc}.") from exc
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            column, sensor_id = _pair(line, option=f"--map-file {path}, line {number}:")
        except CommandError as exc:
            raise CommandError(f"{exc} Each line is COLUMN=SENSOR-ID; # starts a comment.") from None
        mapping[column] = sensor_id
    return mapping


def _per_column(values: list[str], *, option: str, choices: list[str] | None = None) -> dict[str, str]:
    """``[COLUMN=]VALUE`` options: a bare VALUE applies to every column not named on its own."""
    result = {}
    for value in values:
        column, target = _pair(value, option=option) if "=" in value else (ANY_COLUMN, value.strip())
        if choices is not None and target not in choices:
            raise CommandError(f"{option} {value!r}: {target!r} is not one of {', '.join(choices)}.")
        result[column] = target
    return result


class Command(BaseCommand):
    help = (
        "Import readings from a CSV file (plain or gzip): long form (sensor, time, value[, quality] per row) or "
        "wide form (a time column and one column per sensor). Streams the file in chunks through binary COPY, "
        "so memory stays flat for files of any size. Idempotent: readings already stored are skipped and counted. "
        "Rows with errors and repeated timestamps are reported by line number; the rest is imported. Label "
        "columns (0/1 per row) become fault labels. See docs/operations.md, 'Importing history'."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The CSV file; gzip-compressed files (.gz or gzip content) are read as is.")
        parser.add_argument(
            "--form",
            choices=["long", "wide"],
            help="Layout of the file. Default: long if line 1 has a sensor (or sensor_id) and a value column, "
            "else wide.",
        )
        parser.add_argument(
            "--delimiter",
            help="Field delimiter (use 'tab' for a tab). Default: the most frequent of , ; tab | in line 1.",
        )
        parser.add_argument(
            "--encoding", default="utf-8-sig", help="Text encoding of the file. Default utf-8 (a BOM is skipped)."
        )
        parser.add_argument(
            "--time-column",
            help="Column of the times. Default: time, datetime or timestamp (any case), else the first column.",
        )
        parser.add_argument(
            "--time-format",
            help="strptime format of the times (e.g. '%%d.%%m.%%Y %%H:%%M:%%S'), or unix / unix_ms for seconds / "
            "milliseconds since 1970 UTC. Default: ISO 8601.",
        )
        parser.add_argument(
            "--timezone",
            default="UTC",
            help="Time zone of times written without a UTC offset (IANA name, e.g. Europe/Moscow). Default UTC. "
            "Times with an offset keep it.",
        )
        parser.add_argument("--sensor-column", help="Long form: column of the sensor IDs. Default sensor or sensor_id.")
        parser.add_argument("--value-column", help="Long form: column of the values. Default value.")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="COLUMN=SENSOR-ID",
            help="Wide form: the sensor of a column (repeatable). Long form: the sensor of a name in the sensor "
            "column. Unmapped columns are taken as <asset>-<column slug> with --asset, else as sensor IDs.",
        )
        parser.add_argument("--map-file", help="A file of COLUMN=SENSOR-ID lines (# comments), as --map.")
        parser.add_argument(
            "--skip-column",
            action="append",
            default=[],
            metavar="COLUMN",
            help="A column to leave out (repeatable), e.g. SKAB's changepoint. Missing columns are ignored.",
        )
        parser.add_argument(
            "--label-column",
            action="append",
            default=[],
            metavar="COLUMN[=KIND]",
            help="A 0/1 column (repeatable): each run of 1s becomes a fault label of the row's sensors (source "
            "'import'), of KIND or --label-kind.",
        )
        parser.add_argument(
            "--label-kind",
            choices=FaultKind.values,
            help="Fault kind of label columns given without one.",
        )
        parser.add_argument("--asset", help="Code of the asset the file's sensors belong to (and new ones go on).")
        parser.add_argument(
            "--create",
            action="store_true",
            help="Create the asset (with --site) and the sensors that do not exist yet, on --asset.",
        )
        parser.add_argument("--site", help="Site of a new asset (with --create).")
        parser.add_argument("--asset-name", help="Name of a new asset. Default: its code.")
        parser.add_argument(
            "--sensor-type",
            action="append",
            default=[],
            metavar="[COLUMN=]TYPE",
            help=f"Type of new sensors (repeatable; a bare TYPE for all): {', '.join(SensorType.values)}. Default: "
            "told by the column's name (temperature, thermocouple, accel..., vib..., pressure, volt..., current, "
            "flow, rpm, speed, humid...), else refused.",
        )
        parser.add_argument(
            "--unit",
            action="append",
            default=[],
            metavar="[COLUMN=]UNIT",
            help="Unit of new sensors (repeatable; a bare UNIT for all). Default: empty, to fill in later.",
        )
        parser.add_argument(
            "--sampling-interval",
            type=int,
            help="Seconds between readings of new sensors. Default: the median step of their first rows.",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=50_000,
            help="Lines read and written (one COPY) at a time; memory grows with it. Default 50000.",
        )
        parser.add_argument(
            "--show-errors", type=int, default=20, help="Problems listed (the rest are counted). Default 20."
        )
        parser.add_argument(
            "--quiet", action="store_true", help="No progress bar (the problems and the summary are still printed)."
        )

    def handle(self, *args, **options):
        delimiter = options["delimiter"]
        if delimiter in ("tab", "\\t"):
            delimiter = "\t"
        if delimiter is not None and len(delimiter) != 1:
            raise CommandError(f"--delimiter {delimiter!r}: one character (or 'tab').")
        try:
            zone = ZoneInfo(options["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise CommandError(
                f"--timezone {options['timezone']!r} is not a known time zone; use an IANA name such as UTC or "
                "Europe/Berlin."
            ) from None
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1.")
        if options["sampling_interval"] is not None and options["sampling_interval"] < 1:
            raise CommandError("--sampling-interval must be at least 1 second.")
        mapping = _map_file(options["map_file"]) if options["map_file"] else {}
        mapping.update(_pair(value, option="--map") for value in options["map"])
        labels = {}
        for value in options["label_column"]:
            column, _, kind = value.rpartition("=")
            if not column or kind not in FaultKind.values:
                column, kind = value, options["label_kind"]
            if kind is None:
                raise CommandError(
                    f"--label-column {value!r} has no fault kind: write {value}=KIND or add --label-kind KIND "
                    f"({', '.join(FaultKind.values)})."
                )
            labels[column] = kind

        quiet = options["quiet"]
        bar = None
        if not quiet:
            from tqdm import tqdm

            size = Path(options["path"]).stat().st_size if Path(options["path"]).is_file() else None
            # disable=None: no bar when stderr is not a terminal (cron, CI logs).
            bar = tqdm(total=size, unit="B", unit_scale=True, desc="Importing", file=sys.stderr, disable=None)

        rows = 0

        def progress(position: int, chunk_rows: int) -> None:
            nonlocal rows
            rows += chunk_rows
            if bar is not None:
                bar.update(position - bar.n)
                bar.set_postfix(rows=f"{rows:,}", refresh=False)

        started = time.perf_counter()
        try:
            report = readings_import(
                path=options["path"],
                form=options["form"],
                delimiter=delimiter,
                encoding=options["encoding"],
                time_column=options["time_column"],
                time_format=options["time_format"],
                zone=zone,
                sensor_column=options["sensor_column"],
                value_column=options["value_column"],
                mapping=mapping,
                skip_columns=options["skip_column"],
                label_columns=labels,
                asset_code=options["asset"],
                create=options["create"],
                site=options["site"],
                asset_name=options["asset_name"],
                sensor_types=_per_column(options["sensor_type"], option="--sensor-type", choices=SensorType.values),
                units=_per_column(options["unit"], option="--unit"),
                sampling_interval=options["sampling_interval"],
                chunk_size=options["chunk_size"],
                max_problems=max(0, options["show_errors"]),
                progress=progress,
            )
        except ImportRefused as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - started
        self._report(report, options["path"], elapsed)

    def _report(self, report, path: str, elapsed: float) -> None:
        if report.asset_created:
            self.stdout.write(f"Created asset {report.asset_created}.")
        if report.sensors_created:
            self.stdout.write(
                f"Created {len(report.sensors_created)} sensor{'s' if len(report.sensors_created) != 1 else ''}: "
                + ", ".join(report.sensors_created)
                + "."
            )
        if report.problem_count:
            self.stdout.write(self.style.WARNING(f"Rejected ({report.problem_count} problems):"))
            for problem in report.problems:
                self.stdout.write(f"  {problem}")
            if report.problem_count > len(report.problems):
                self.stdout.write(f"  ... and {report.problem_count - len(report.problems)} more.")
        if report.repeated:
            self.stdout.write(
                self.style.WARNING(f"Repeated timestamps ({report.repeated}; the first reading of each is kept):")
            )
            for problem in report.repeats:
                self.stdout.write(f"  {problem}")
            if report.repeated > len(report.repeats):
                self.stdout.write(f"  ... and {report.repeated - len(report.repeats)} more.")
        summary = (
            f"Imported {path} in {elapsed:.1f} s: {report.rows:,} rows read; readings: {report.stored:,} stored, "
            f"{report.present:,} already present, {report.repeated:,} repeated in the file, "
            f"{report.rejected:,} rejected"
        )
        if report.blank:
            summary += f", {report.blank:,} blank cells skipped"
        if report.labels_created or report.labels_present:
            summary += f"; fault labels: {report.labels_created:,} created, {report.labels_present:,} already present"
        self.stdout.write(summary + ".")
        if report.stored == 0 and report.present:
            self.stdout.write(self.style.SUCCESS("Nothing new: every reading of the file was already stored."))

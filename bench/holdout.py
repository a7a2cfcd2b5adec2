"""Benchmark: fault shapes no model was trained on (readings/holdout.py), through the product, per shape.

On the local PostgreSQL (database smartmaint_bench_holdout, recreated and dropped) with a local MLflow store
in a temporary directory:

1. `seed_data`: --sensors sensors (4 per asset), --days days of readings a minute apart each, ending END.
2. `train_models --promote`: every detector the command trains (the supervised random forests; the per-asset
   normal-behaviour models where the product has them).
3. Assets without a degradation episode (whose trend has no normal continuation) are taken in order: the first
   len(shapes) x --repeats get one holdout shape each, on one sensor (the sensor rotates with the shape, so
   the shapes meet several sensor types), the next --clean-assets none. Every sensor of those assets gets
   --hours of readings after END through `readings_holdout_append` (its normal behaviour replayed from the
   same time of day on recent days, the shape laid on it from its onset, staggered over the day). The rest of
   the fleet gets its normal behaviour too, not measured: it is the measured sensors' peers, which must not
   fall silent.
4. `score_readings --from END --to END+hours`.
5. Per shape, for the product's anomalies, for those that reach the alert threshold, and for each detector
   alone (its own score in the anomaly's explanation: the normal model, and the supervised random forest as
   the reference):
   - detected: an anomaly whose window lies at least half inside the fault (an alarm touching only a fault's
     edge is not credited: the window after a flatline ends, mostly normal readings, is a false alarm);
   - minutes from the onset to the end of the first such window (when the window's last reading is in: the
     earliest its anomaly can be raised); drift: whether that was before the drift crossed the normal range;
   - a gap has no readings to score: it is detected by the staleness rule (check_alerts, readings.selectors
     sensor_state) evaluated each minute of the gap on the reading before it;
   - anomalies after the fault (windows less than half inside it, ending after it), e.g. when a flatline or
     gap ends, and before its onset.
   Clean sensors (every sensor without a shape: the faulty sensors' siblings and the clean assets' sensors):
   anomalies over the appended period per sensor-week.
Targets (issue 12): every shape detected; median minutes to detection under 30; at most 1 false anomaly per
sensor-week on clean sensors; none when a flatline or gap ends. The reference is the supervised model alone
in the same run.

    .venv/bin/python bench/holdout.py [--sensors 64] [--days 7] [--hours 24] [--repeats 1] [--clean-assets 4]

Prints a table per shape and writes bench/results/holdout.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = "smartmaint_bench_holdout"
END = "2026-01-01T00:00:00Z"
# Columns: every anomaly the product stores, those that open an alert, and each detector alone.
PRODUCT = "product"
ALERTS = "alerts"
NORMAL = "normal"
SUPERVISED = "random_forest"
# Onsets: LEAD_HOURS after the training period ends, staggered by STAGGER_MINUTES per faulty sensor (modulo
# STAGGER_SPAN_MINUTES) so the faults begin at different times of day and shift.
LEAD_HOURS = 3
STAGGER_MINUTES = 53
STAGGER_SPAN_MINUTES = 240


@dataclass
class Planned:
    sensor: object  # sensors.models.Sensor
    shape: str | None
    lead: int  # readings before the onset
    measured: bool = True  # False: the rest of the fleet, kept reporting (peers), not counted


def plan_sensors(*, shapes: list[str], repeats: int, clean_assets: int) -> list[Planned]:
    """Which sensors get which shape: assets without a degradation label, in code order (see the module doc)."""
    from readings.choices import FaultKind
    from readings.models import FaultLabel
    from sensors.models import Asset, Sensor

    degrading = set(
        FaultLabel.objects.filter(kind=FaultKind.DEGRADATION).values_list("sensor__asset_id", flat=True).distinct()
    )
    assets = [asset for asset in Asset.objects.order_by("code") if asset.pk not in degrading]
    wanted = len(shapes) * repeats + clean_assets
    if len(assets) < wanted:
        raise SystemExit(f"{wanted} assets without degradation needed, {len(assets)} seeded: seed more sensors.")
    plan = []
    measured = {asset.pk for asset in assets[:wanted]}
    for sensor in Sensor.objects.exclude(asset__in=measured).order_by("sensor_id"):
        plan.append(Planned(sensor, None, 0, measured=False))
    for number, asset in enumerate(assets[:wanted]):
        sensors = list(Sensor.objects.filter(asset=asset).order_by("sensor_id"))
        shape = shapes[number % len(shapes)] if number < len(shapes) * repeats else None
        faulty = number % len(sensors)
        lead = (LEAD_HOURS * 60 + (number * STAGGER_MINUTES) % STAGGER_SPAN_MINUTES) * 60
        for index, sensor in enumerate(sensors):
            plan.append(
                Planned(sensor, shape if index == faulty else None, lead // sensor.sampling_interval if shape else 0)
            )
    return plan


def append_holdout(plan: list[Planned], *, hours: float, seed: int = 0) -> list:
    """Append ``hours`` of readings to every planned sensor through the product's service; the HoldoutAppends of
    the measured ones.

    The rest of the fleet keeps reporting too: silent peers would make the measured sensors' windows look odd
    (a sensor's level against its peers' at a shift change). A sensor of the rest without normal readings to
    continue (a degradation labelled over its whole recent week) stays silent.
    """
    from readings.services import readings_holdout_append

    appended = []
    for item in plan:
        readings = int(hours * 3600 // item.sensor.sampling_interval)
        try:
            done = readings_holdout_append(
                sensor=item.sensor, shape=item.shape, readings=readings, lead=item.lead, seed=seed, now=None
            )
        except ValueError as exc:
            if item.measured:
                raise
            print(f"{item.sensor.sensor_id} (not measured) left silent: {exc}")
            continue
        if item.measured:
            appended.append(done)
    return appended


def gap_rule_minutes(appended, sensor) -> float | None:
    """Minutes from a gap's onset until the staleness rule (what check_alerts opens alerts on) fires, checked
    every minute on the reading before the gap; None if it never does within the gap."""
    from readings.models import Reading
    from readings.selectors import sensor_state, sensor_status_row

    before = Reading.objects.filter(sensor=sensor, time__lt=appended.onset).order_by("-time").first()
    row = sensor_status_row(sensor)
    reading = {"time": before.time, "value": before.value, "quality": before.quality}
    now = appended.onset
    while now <= appended.end:
        if sensor_state(row, reading, now)["connectivity"] != "online":
            return (now - appended.onset).total_seconds() / 60
        now += timedelta(minutes=1)
    return None


def views() -> dict:
    """What counts as a detection, per column: the product's anomalies, those that alerted (at the alert
    threshold, or opening an alert as a lasting departure: ANOMALY_ALERT_PERSISTENCE), and each detector alone
    (its own score in the anomaly's explanation at or above ANOMALY_THRESHOLD; a window stored under one detector
    may have been flagged by the other too)."""
    from django.conf import settings

    from mlops.models import Alert

    threshold = settings.ANOMALY_THRESHOLD
    opened = set(Alert.objects.exclude(anomaly=None).values_list("anomaly_id", flat=True))

    def alone(name: str, key: str):
        def flagged(anomaly) -> bool:
            score = (anomaly.explanation or {}).get(key) if hasattr(anomaly, "explanation") else None
            if score is None:  # no explanation (a product without one): the detector that stored it
                return (getattr(anomaly, "detector", None) or anomaly.kind) == name
            return score >= threshold

        return flagged

    return {
        PRODUCT: lambda anomaly: True,
        ALERTS: lambda anomaly: anomaly.score >= settings.ANOMALY_ALERT_THRESHOLD or anomaly.pk in opened,
        NORMAL: alone(NORMAL, "normal"),
        SUPERVISED: alone(SUPERVISED, "supervised"),
    }


def _windows(item, sensor, window: int):
    """The fixed window slots (mlops.features) of ``sensor`` over its appended period: (starts, ends)."""
    import numpy as np

    from mlops.features import EPOCH, slot_of, span_of, to_us

    span = span_of(sensor.sampling_interval, window)
    first, last = (slot_of(np.array([to_us(moment)]), span)[0] for moment in (item.first, item.last))
    starts = EPOCH + span * np.arange(first, last + 1)
    return starts, starts + span


def measure(appended: list, sensors: dict, *, window: int) -> dict:
    """The per-shape and clean-sensor figures (see the module doc) for each view of the anomalies (``views``).

    Detection, delay and alarms follow the product's evaluation rule (mlops.evaluation.score_detections,
    docs/mlops.md "Evaluation"): a window belongs to a fault when it overlaps it and starts more than
    min(one window, half the fault) before it ends; the delay runs to the end of the first such window of a
    true alarm. Flagged windows that do not belong to the fault and end after it are counted as raised when
    it ends.
    """
    import numpy as np

    from mlops.evaluation import Faults, score_detections
    from mlops.features import to_us
    from mlops.models import Anomaly

    by_sensor = {item.sensor_id: item for item in appended}
    first = min(item.first for item in appended)
    last = max(item.last for item in appended)
    anomalies = list(
        Anomaly.objects.filter(sensor__sensor_id__in=list(by_sensor), end__gte=first, start__lte=last).select_related(
            "sensor"
        )
    )
    grids = {item.sensor_id: _windows(item, sensors[item.sensor_id], window) for item in appended}
    clean = [item for item in appended if item.shape is None]
    clean_weeks = sum((item.last - item.first).total_seconds() for item in clean) / (7 * 86400)
    faulty_assets = {sensors[item.sensor_id].asset_id for item in appended if item.shape is not None}
    no_faults = Faults(*(np.array([], dtype=dtype) for dtype in (np.int64, np.int64, object, "M8[us]", "M8[us]")))
    result = {}
    for view, flagged in views().items():
        mine = [anomaly for anomaly in anomalies if flagged(anomaly)]

        def predicted(sensor_id: str, mine=mine) -> np.ndarray:
            starts, ends = grids[sensor_id]
            moments = np.array([to_us(a.start) for a in mine if a.sensor.sensor_id == sensor_id], dtype="M8[us]")
            # The window each anomaly lies in (its fixed start, whatever the detector stored as its start).
            slots = np.searchsorted(starts, moments, side="right") - 1
            flags = np.zeros(len(starts), dtype=bool)
            flags[slots[(slots >= 0) & (moments < ends[-1])]] = True
            return flags

        shapes = []
        for item in appended:
            if item.shape is None:
                continue
            sensor = sensors[item.sensor_id]
            starts, ends = grids[item.sensor_id]
            flags = predicted(item.sensor_id)
            fault_start, fault_end = to_us(item.onset), to_us(item.end + timedelta(seconds=sensor.sampling_interval))
            faults = Faults(
                np.array([0]), np.array([sensor.pk]), np.array([item.shape], dtype=object), *(
                    np.array([moment], dtype="M8[us]") for moment in (fault_start, fault_end)
                )
            )  # fmt: skip
            scores = score_detections(
                flags, sensor=np.full(len(starts), sensor.pk), start=starts, end=ends, faults=faults
            )
            belongs = (ends > fault_start) & (
                starts < fault_end - np.minimum(ends - starts, (fault_end - fault_start) // 2)
            )
            after = flags & ~belongs & (ends > fault_end)
            before = flags & ~belongs & (ends <= fault_end)
            row = {
                "shape": item.shape,
                "sensor_id": item.sensor_id,
                "sensor_type": sensor.sensor_type,
                "onset": item.onset.isoformat(),
                "end": item.end.isoformat(),
                "detected": scores.detected == 1,
                "minutes": scores.delay_median_minutes,
                "windows_flagged_in_fault": int((flags & belongs).sum()),
                "alarms": scores.alarms,
                "false_alarms": scores.alarms - scores.true_alarms,
                "anomalies_after_end": int(after.sum()),
                # From the fault's end to each such window's start.
                "after_end_minutes": [float((start - fault_end) / np.timedelta64(60, "s")) for start in starts[after]],
                "anomalies_before_onset": int(before.sum()),
            }
            if item.crossing is not None:
                row["crossing"] = item.crossing.isoformat()
                first_hit = item.onset + timedelta(minutes=row["minutes"]) if row["detected"] else None
                row["before_crossing"] = first_hit is not None and first_hit <= item.crossing
            if item.shape == "gap":
                rule = gap_rule_minutes(item, sensor)
                row["rule_minutes"] = rule
                row["detected_by_anomaly"] = row["detected"]
                row["detected"] = row["detected"] or rule is not None
                times = [m for m in (row["minutes"], rule) if m is not None]
                row["minutes"] = min(times) if times else None
            shapes.append(row)

        false, alarms = [], 0
        for item in clean:
            starts, ends = grids[item.sensor_id]
            flags = predicted(item.sensor_id)
            pk = sensors[item.sensor_id].pk
            alarms += score_detections(
                flags, sensor=np.full(len(starts), pk), start=starts, end=ends, faults=no_faults
            ).alarms
            false += [
                {
                    "sensor_id": item.sensor_id,
                    "sensor_type": sensors[item.sensor_id].sensor_type,
                    "beside_a_fault": sensors[item.sensor_id].asset_id in faulty_assets,
                    "start": str(start),
                }
                for start in starts[flags]
            ]
        times = [row["minutes"] for row in shapes if row["minutes"] is not None]
        ends_of = [row for row in shapes if row["shape"] in ("flatline", "gap")]
        result[view] = {
            "shapes": shapes,
            "detected": sum(row["detected"] for row in shapes),
            "of": len(shapes),
            "median_minutes": statistics.median(times) if times else None,
            "clean_sensors": len(clean),
            "clean_sensor_weeks": clean_weeks,
            "clean_false_anomalies": len(false),
            "false_per_sensor_week": len(false) / clean_weeks if clean_weeks else None,
            "clean_false_alarms": alarms,
            "false_alarms_per_sensor_week": alarms / clean_weeks if clean_weeks else None,
            "clean_false": false,
            "anomalies_when_flatline_or_gap_ends": sum(row["anomalies_after_end"] for row in ends_of),
        }
    return result


def table(result: dict) -> str:
    """The per-shape table: the product (all detectors) beside each detector alone."""
    detectors = list(result)
    lines = []
    header = f"{'shape':<12}{'sensor':<24}" + "".join(f"{name[:22]:>24}" for name in detectors)
    lines += [header, " " * 36 + "".join(f"{'found  min  after-end':>24}" for _ in detectors)]
    for index, row in enumerate(result[PRODUCT]["shapes"]):
        cells = []
        for name in detectors:
            item = result[name]["shapes"][index]
            minutes = "-" if item["minutes"] is None else f"{item['minutes']:.0f}"
            mark = "yes" if item["detected"] else "no"
            if item.get("crossing") and item["detected"]:
                mark += "<x" if item["before_crossing"] else ">x"
            if item["shape"] == "gap" and item["detected"] and not item["detected_by_anomaly"]:
                mark += "(rule)"
            cells.append(f"{mark:>10}{minutes:>5}{item['anomalies_after_end']:>9}")
        label = f"{row['sensor_id']} {row['sensor_type']}"
        lines.append(f"{row['shape']:<12}{label:<24}" + "".join(f"{cell:>24}" for cell in cells))
    summary = []
    for name in detectors:
        item = result[name]
        median = "-" if item["median_minutes"] is None else f"{item['median_minutes']:.0f}"
        rate = item["false_per_sensor_week"]
        summary.append(
            f"{name}: {item['detected']}/{item['of']} detected, median {median} min, "
            f"{item['clean_false_anomalies']} false on {item['clean_sensors']} clean sensors "
            f"({rate:.2f}/sensor-week; {item['clean_false_alarms']} alarms of consecutive windows, "
            f"{item['false_alarms_per_sensor_week']:.2f}/sensor-week), "
            f"{item['anomalies_when_flatline_or_gap_ends']} when a flatline or gap ends"
        )
    lines.append("(<x / >x: a drift detected before / after it crossed the normal range; (rule): staleness rule)")
    return "\n".join(lines + summary)


def appended_from_metadata(sensors: list) -> list:
    """The HoldoutAppends of a database kept by --keep, from the records readings_holdout_append left."""
    from readings.services import HOLDOUT_MARK, HoldoutAppend

    appended = []
    for sensor in sensors:
        for record in sensor.metadata.get(HOLDOUT_MARK, []):
            moments = {
                name: datetime.fromisoformat(record[name]) if record.get(name) else None
                for name in ("first", "last", "onset", "end", "crossing")
            }
            appended.append(
                HoldoutAppend(
                    sensor_id=sensor.sensor_id,
                    shape=record["shape"],
                    stored=0,
                    magnitude=record["magnitude"],
                    **moments,
                )
            )
    return appended


def log_to_run(result: dict) -> None:
    """Per shape, whether each view found it and how fast, logged to the normal model's champion run in MLflow
    (beside the per-fault-kind recall of training), with the whole result as ``holdout.json``."""
    from mlops import registry

    client = registry.client()
    version = client.get_model_version_by_alias(registry.normal_model_name(), registry.CHAMPION)
    for view, figures in result.items():
        for row in figures["shapes"]:
            client.log_metric(version.run_id, f"holdout_{view}_{row['shape']}_detected", float(row["detected"]))
            if row["minutes"] is not None:
                client.log_metric(version.run_id, f"holdout_{view}_{row['shape']}_minutes", float(row["minutes"]))
    client.log_dict(version.run_id, result, "holdout.json")
    print(f"Per-shape results logged to run {version.run_id} ({registry.normal_model_name()} v{version.version}).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=64, help="Sensors seeded (4 per asset). Default 64.")
    parser.add_argument("--days", type=float, default=7, help="Days of training readings per sensor. Default 7.")
    parser.add_argument("--hours", type=float, default=24, help="Hours appended after training. Default 24.")
    parser.add_argument("--repeats", type=int, default=1, help="Sensors per shape. Default 1.")
    parser.add_argument("--clean-assets", type=int, default=4, help="Assets appended without a shape. Default 4.")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep",
        action="store_true",
        help=f"Keep the database {DB} and the MLflow store (var/bench-holdout) for a look, or for --reuse.",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Use the fleet a --keep run left (seeded, appended): delete its anomalies, alerts and scoring marks, "
        "score and measure again (the models as they are, or retrained with --retrain).",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="With --reuse: train_models again on the training period only (--to and --baseline end at END).",
    )
    parser.add_argument("--server", default=os.environ.get("BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    import psycopg

    sys.path.insert(0, str(ROOT))
    from bench.common import manage

    end = datetime.fromisoformat(END.replace("Z", "+00:00")).astimezone(UTC)
    readings = int(args.sensors * args.days * 1440)
    timings = {}
    kept = ROOT / "var" / "bench-holdout"
    with tempfile.TemporaryDirectory() as scratch:
        var = str(kept) if args.keep or args.reuse else scratch
        env = {**os.environ, "DJANGO_DEBUG": "true", "DATABASE_URL": f"{args.server}/{DB}", "DJANGO_VAR_DIR": var}
        if not args.reuse:
            with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {DB}")
            if kept.exists():
                shutil.rmtree(kept)
            manage(env, "migrate", "-v0")
            started = time.perf_counter()
            manage(
                env, "seed_data", "--sensors", str(args.sensors), "--readings", str(readings), "--end", END, "--quiet"
            )
            timings["seed_s"] = time.perf_counter() - started
        if not args.reuse or args.retrain:
            started = time.perf_counter()
            # As an operator would, before anything is appended; a retrain of a kept fleet must not see what was.
            since = (end - timedelta(days=args.days)).isoformat()
            period = ("--to", END, "--baseline", since, END) if args.reuse else ()
            trained = manage(env, "train_models", "--promote", "--window", str(args.window), *period, capture=True)
            timings["train_s"] = time.perf_counter() - started
            print(trained.strip())

        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "smartmaint.settings"
        import django

        django.setup()
        from mlops.models import Alert, Anomaly, ScoringRun, ScoringWatermark
        from readings.choices import HoldoutShape
        from readings.services import HOLDOUT_MARK
        from sensors.models import Sensor

        plan = plan_sensors(shapes=list(HoldoutShape.values), repeats=args.repeats, clean_assets=args.clean_assets)
        if args.reuse:
            measured = [item.sensor.pk for item in plan if item.measured]
            chosen = list(
                Sensor.objects.filter(pk__in=measured, metadata__has_key=HOLDOUT_MARK).select_related("asset")
            )
            appended = appended_from_metadata(chosen)
            for model in (Alert, Anomaly, ScoringWatermark):
                model.objects.filter(sensor__in=chosen).delete()
            ScoringRun.objects.all().delete()
        else:
            appended = append_holdout(plan, hours=args.hours, seed=args.seed)
            chosen = [item.sensor for item in plan if item.measured]
        until = max(item.last for item in appended) + timedelta(minutes=1)
        started = time.perf_counter()
        scored = manage(
            env,
            *("score_readings", "--from", end.isoformat(), "--to", until.isoformat(), "--window", str(args.window)),
            capture=True,
        )
        timings["score_s"] = time.perf_counter() - started
        print(scored.strip())
        result = measure(appended, {sensor.sensor_id: sensor for sensor in chosen}, window=args.window)
        log_to_run(result)
        from django.db import connections

        connections.close_all()
    if not (args.keep or args.reuse):
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")

    print()
    print(table(result))
    out = {
        "config": {**vars(args), "readings": readings, "end": END, "server": None},
        "timings": timings,
        "detectors": result,
        "appended": [item.as_record() | {"sensor_id": item.sensor_id} for item in appended if item.shape],
    }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "holdout.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

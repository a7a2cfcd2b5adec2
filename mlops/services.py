"""Writes of the MLOps app: training and registering models, moving aliases, scoring readings, alerts and mail."""

from __future__ import annotations

import bisect
import logging
import smtplib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, models, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from mlops import registry
from mlops.choices import SEVERITY_RANK, UNKNOWN_DEPARTURE, AlertKind, AlertMailState, AlertSeverity, AlertStatus
from mlops.features import WINDOW
from sensors.choices import SensorStatus
from sensors.models import Sensor

logger = logging.getLogger(__name__)


@registry.translate_errors
def models_train(
    *,
    sensor_types: list[str] | None = None,
    sensors: list[Sensor] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    window: int = WINDOW,
    promote: bool = False,
    seed: int = 0,
):
    """Train, evaluate and register one anomaly detector per sensor type (see ``mlops.training``)."""
    from mlops.training import train_and_register

    return train_and_register(
        sensor_types=sensor_types, sensors=sensors, start=start, end=end, window=window, promote=promote, seed=seed
    )


@registry.translate_errors
def models_train_normal(
    *,
    assets: list,
    sensors: list[Sensor] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    window: int = WINDOW,
):
    """Fit the normal-behaviour model of each of ``assets`` on its baseline and register them.

    See ``mlops.normal_training``.
    """
    from mlops.normal_training import train_normal

    return train_normal(assets=assets, sensors=sensors, start=start, end=end, window=window)


# The MLflow version tags that keep why staff moved an alias to a version or archived it (with who and when).
REASON_TAG = "smartmaint.{action}_reason"


@registry.translate_errors
def model_set_alias(*, name: str, version: str, alias: str, user, reason: str = "") -> None:
    """Point ``alias`` (champion or challenger) at ``version`` and record it, with ``reason``, in the admin log
    and on the version in MLflow. An archived version cannot take an alias: scoring would serve it."""
    if alias not in registry.ALIASES:
        raise ValueError(f"Alias must be one of {', '.join(registry.ALIASES)}.")
    mlflow_client = registry.client()
    if mlflow_client.get_model_version(name, version).current_stage == "Archived":
        raise ValueError(f"version {version} of {name} is archived: an archived version cannot be made {alias}.")
    mlflow_client.set_registered_model_alias(name, alias, version)
    _record_reason(mlflow_client, name=name, version=version, action=alias, user=user, reason=reason)
    _log_admin_action(user, _with_reason(f"Set alias {alias} of {name} to version {version}", reason))


@registry.translate_errors
def model_archive(*, name: str, version: str, user, reason: str = "") -> None:
    """Archive a version (its aliases are removed first: an archived model must not serve), recording
    ``reason`` in the admin log and on the version in MLflow."""
    mlflow_client = registry.client()
    model_version = mlflow_client.get_model_version(name, version)
    for alias in model_version.aliases:
        mlflow_client.delete_registered_model_alias(name, alias)
    mlflow_client.transition_model_version_stage(name, version, stage="Archived")
    _record_reason(mlflow_client, name=name, version=version, action="archived", user=user, reason=reason)
    _log_admin_action(user, _with_reason(f"Archived {name} version {version}", reason))


def _with_reason(message: str, reason: str) -> str:
    return f"{message}. Reason: {reason}" if reason else message


def _record_reason(mlflow_client, *, name: str, version: str, action: str, user, reason: str) -> None:
    if reason:
        stamp = f"{reason} ({user.get_username()}, {timezone.now():%Y-%m-%d %H:%M} UTC)"
        mlflow_client.set_model_version_tag(name, version, REASON_TAG.format(action=action), stamp[:5000])


def _log_admin_action(user, message: str) -> None:
    from mlops.models import Anomaly

    # Registry objects live in MLflow, not in our tables: the log entry hangs
    # on the Anomaly content type and carries the model in its message.
    LogEntry.objects.create(
        user_id=user.pk,
        content_type=ContentType.objects.get_for_model(Anomaly),
        object_id="",
        object_repr=message[:200],
        action_flag=CHANGE,
        change_message=message,
    )


# --- scoring ------------------------------------------------------------------


# The normal model's ratio from which the supervised detector's probability counts in full; while a flat run the
# normal model flagged lies in the supervised features' baseline, a whole departure.
SUPERVISED_CONFIRM_RATIO = 0.5
SUPERVISED_CONFIRM_AFTER_FLAT = 1.0


def supervised_confirmed(probability: float, normal_ratio: float | None, *, after_flat: bool = False) -> float:
    """The supervised detector's probability as it counts in a window's score, given the normal model's ratio.

    The supervised features are relative to the sensor's last 30 windows, so a fault stays in their baseline
    after the sensor is back to normal and the return itself looks like a fault (the holdout's flatline: 15
    windows flagged after its end, none by the normal model). Where the normal model knows the sensor
    (``normal_ratio`` not None), it must see at least half a departure for the probability to count in full;
    below, the probability is scaled down in proportion. Measured on bench/holdout.py: windows flagged after a
    flatline or gap ended 16 -> 1, every shape still found, median delay unchanged (16 min).

    A flat run (``after_flat``: the normal model flagged one in those 30 windows) leaves the baseline's noise
    near zero, so the sensor's own noise after it looks like a burst to the supervised features for up to 30
    windows (the holdout's frozen value: 0.54 and 0.53, 7 and 127 minutes after it ended, with the normal model
    at 0.6 and 0.54 of its threshold on the sensor's ordinary noise). Then the normal model must see a whole
    departure for the probability to count in full.
    """
    if normal_ratio is None:
        return probability
    needed = SUPERVISED_CONFIRM_AFTER_FLAT if after_flat else SUPERVISED_CONFIRM_RATIO
    return probability * min(1.0, max(normal_ratio, 0.0) / needed)


@dataclass
class ScoreResult:
    model_name: str
    model_version: str
    windows: int
    anomalies: list
    # What mailing the alerts this run opened did (alerts_notify's counts); None while it waits for an outer
    # transaction to commit.
    mail: dict | None = None
    models: str = ""  # every model that scored, "name vN + name vM"
    busy: int = 0  # sensors left out: another run was scoring them (see readings_score_pending)
    opened: list[int] = field(default_factory=list)  # the alerts this run opened
    early: int = 0  # provisional anomalies stored for windows not ended yet (see mlops.scoring.early_flats)


def anomaly_title(anomaly) -> str:
    """What an anomaly looks like, in words: the fault kind recognised, or an unknown departure from normal."""
    from readings.choices import FaultKind

    if anomaly.kind in FaultKind.values:
        return FaultKind(anomaly.kind).label
    return "Unknown departure from normal" if anomaly.detector == "normal" else "Anomaly"


def anomaly_why(anomaly) -> str:
    """The explanation of an anomaly in one line for people: "level 4.1 sigma above normal (+12 %) on PUMP-1-VIB"."""
    contributions = (anomaly.explanation or {}).get("contributions") or []
    return "; ".join(f"{item['text']} on {item['sensor']}" for item in contributions)


def readings_score(*, sensors: list[Sensor], start: datetime, end: datetime, window: int = WINDOW) -> ScoreResult:
    """Score the windows of ``sensors`` (one type) overlapping [start, end) that are ready by ``end``.

    On request (the score API, ``score_readings --from``): the sensors' watermarks stay where they are.
    """
    from mlops.scoring import window_floor

    since = {sensor.pk: window_floor(start, sensor=sensor, window=window) for sensor in sensors}
    return _score(sensors=sensors, since=since, until=end, window=window, advance=False)


def readings_score_pending(
    *, sensors: list[Sensor], now: datetime | None = None, since: datetime | None = None, window: int = WINDOW
) -> ScoreResult:
    """Score every ready window of ``sensors`` (one type) after each sensor's watermark, and move the watermarks.

    The scheduled run (``score_readings``). A sensor never scored starts at ``since`` (default: now minus
    SCORING_FIRST_RUN_HOURS). Windows are fixed in time and scored once they are ready (see
    ``mlops.scoring.score_windows``), so runs at any cadence find the same anomalies as one run over the whole
    range; ``now`` defaults to the current time.
    """
    now = now or timezone.now()
    since = since or now - timedelta(hours=settings.SCORING_FIRST_RUN_HOURS)
    with transaction.atomic():
        # Overlapping runs (a slow run and the next one, several workers) split the sensors instead of scoring
        # the same windows twice: each claims the sensors no other run holds (row locks, SKIP LOCKED) until it
        # has stored their anomalies and moved their watermarks. FOR NO KEY UPDATE: ingest's foreign-key checks
        # (KEY SHARE) on the same rows are not blocked. Other databases (SQLite: one writer) score them all.
        # With each claimed sensor's watermark, in the same statement (only the sensors' rows are locked).
        pks = [sensor.pk for sensor in sensors]
        marks = dict(
            Sensor.objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
            .filter(pk__in=pks)
            .values_list("pk", "scoring_watermark__scored_until")
        )
        mine = [sensor for sensor in sensors if sensor.pk in marks]
        if not mine:
            return ScoreResult("", "", 0, [], models="", busy=len(sensors))
        starts = {sensor.pk: marks[sensor.pk] or since for sensor in mine}
        result = _score(sensors=mine, since=starts, until=now, window=window, advance=True, mail=False)
        result.busy = len(sensors) - len(mine)
    # Mailed once the claim is released and the anomalies committed (a run elsewhere sees the alerts then).
    result.mail = alerts_mail_after_commit(alert_ids=result.opened)
    return result


def _score(
    *, sensors: list[Sensor], since: dict, until: datetime, window: int, advance: bool, mail: bool = True
) -> ScoreResult:
    """Windows scored at or above ANOMALY_THRESHOLD become Anomaly rows, unique per sensor, window and model
    version (scoring the same windows again adds nothing, and raises no alert again); new ones at or above
    ANOMALY_ALERT_THRESHOLD open an alert for their sensor.
    """
    from mlops.models import Anomaly, ScoringRun
    from mlops.scoring import early_flats, normal_champion, normal_verdicts, score_windows
    from mlops.selectors import readings_due_count

    outcome = score_windows(
        sensors=sensors,
        since=since,
        until=until,
        window=window,
        grace=timedelta(seconds=settings.SCORING_GRACE_SECONDS),
    )
    champion, scored = outcome.champion, outcome.windows
    normal = normal_champion()
    verdicts = (
        normal_verdicts(normal=normal, sensors=sensors, windows=scored, window=window, until=until)
        if normal is not None and scored
        else {}
    )
    # One score per window: the higher of the supervised detector's probability and the normal model's score,
    # stored under the model that gave it (so scoring again with the same versions adds nothing).
    found = []
    for item in scored:
        verdict = verdicts.get((item.sensor_pk, item.start))
        supervised = supervised_confirmed(
            item.score,
            verdict.ratio if verdict is not None else None,
            after_flat=verdict is not None and verdict.after_flat,
        )
        normal_wins = verdict is not None and (champion is None or verdict.score > supervised)
        score = verdict.score if normal_wins else supervised
        if score < settings.ANOMALY_THRESHOLD:
            continue
        source = normal if normal_wins else champion
        explanation = {"supervised": round(item.score, 4) if champion is not None else None}
        if verdict is not None:
            explanation |= {"normal": round(verdict.score, 4), "ratio": round(verdict.ratio, 3)}
            explanation["contributions"] = verdict.explanation
        found.append(
            Anomaly(
                sensor_id=item.sensor_pk,
                start=item.start,
                end=item.end,
                score=round(score, 4),
                kind=verdict.kind if verdict is not None else UNKNOWN_DEPARTURE,
                detector="normal" if normal_wins else "random_forest",
                explanation=explanation,
                model_name=source.name,
                model_version=source.version,
            )
        )
    early = (
        early_flats(
            normal=normal,
            sensors=sensors,
            unscored={pk: outcome.scored_until.get(pk, start) for pk, start in since.items()},
            until=until,
            window=window,
        )
        if advance and normal is not None and settings.SCORING_EARLY_FLATS
        else []
    )
    with transaction.atomic():
        # Provisional anomalies of the windows this run scored in full: settled by their verdict.
        fresh = _provisional_settle(found, outcome.scored_until) if advance else set()
        mine = Anomaly.objects.filter(
            sensor_id__in={item.sensor_id for item in found}, start__in={item.start for item in found}
        )
        key = {(item.sensor_id, item.start): (item.model_name, item.model_version) for item in found}
        known = {
            (sensor_id, start)
            for sensor_id, start, name, version in mine.values_list("sensor_id", "start", "model_name", "model_version")
            if key.get((sensor_id, start)) == (name, version)
        } - fresh
        Anomaly.objects.bulk_create(
            [item for item in found if (item.sensor_id, item.start) not in known],
            ignore_conflicts=True,  # a concurrent run stored the same window: the constraint keeps one
        )
        anomalies = [
            anomaly
            for anomaly in mine.select_related("sensor")
            if key.get((anomaly.sensor_id, anomaly.start)) == (anomaly.model_name, anomaly.model_version)
        ]
        # One alert_raise per sensor, not per anomaly (one per anomaly took 28 s of a 24 h backlog of 1,000
        # sensors): its earliest new anomaly at the threshold opens the alert (or refreshes the one open), at the
        # highest severity of them, as raising them one by one in time order would leave it.
        provisional = _provisional_store(early, normal) if early else []
        alerting: dict[int, list] = {}
        for anomaly in sorted([*anomalies, *provisional], key=lambda anomaly: anomaly.start):
            if (anomaly.sensor_id, anomaly.start) not in known and anomaly.score >= settings.ANOMALY_ALERT_THRESHOLD:
                alerting.setdefault(anomaly.sensor_id, []).append(anomaly)
        # A departure below the alert threshold that goes on: its sensor's anomalies in enough of its latest windows.
        # A sensor's alert opens with whichever comes first, in time: its first anomaly at the threshold, or the
        # one that made its departure a lasting one (one run over hours finds both).
        persisting = _persisting(
            [anomaly for anomaly in anomalies if (anomaly.sensor_id, anomaly.start) not in known], window=window
        )
        opened = []
        for sensor_id in [*alerting, *(pk for pk in persisting if pk not in alerting)]:
            over = alerting.get(sensor_id, [])  # at the threshold, in time order
            anomaly, lasting = (over[0], None) if over else (None, None)
            if sensor_id in persisting and (anomaly is None or persisting[sensor_id][0].start < anomaly.start):
                anomaly, *lasting = persisting[sensor_id]
            highest = max((other.score for other in over), default=0.0)
            alert, new = alert_raise(
                sensor=anomaly.sensor,
                kind=AlertKind.ANOMALY,
                # A lasting departure under the alert threshold is a warning, unless the sensor reached 0.95 too.
                severity=AlertSeverity.CRITICAL if highest >= 0.95 else AlertSeverity.WARNING,
                title=f"{anomaly_title(anomaly)} on {anomaly.sensor.sensor_id} "
                + (f"in {lasting[0]} of its last {lasting[1]} windows " if lasting else "")
                + f"(score {anomaly.score:.2f})",
                detail=f"{anomaly.model_name} v{anomaly.model_version} flagged {anomaly.start:%Y-%m-%d %H:%M} "
                f"to {anomaly.end:%H:%M} UTC"
                + (" (the readings in so far; its window has not ended)" if anomaly.provisional else "")
                + "."
                + (
                    f" Below the alert threshold ({settings.ANOMALY_ALERT_THRESHOLD:g}), but flagged in {lasting[0]} "
                    f"of the sensor's last {lasting[1]} windows."
                    if lasting
                    else ""
                )
                + (f" Why: {anomaly_why(anomaly)}." if anomaly_why(anomaly) else ""),
                anomaly=anomaly,
                notify=False,
            )
            if new:
                opened.append(alert.pk)
        used = champion or normal
        # A scheduled run is logged even when it scored nothing, with the readings it should have scored: 0
        # windows while some arrived is flagged (ScoringRun.flagged). On request, only runs that scored.
        if scored or advance:
            ScoringRun.objects.create(
                sensor_type=sensors[0].sensor_type,
                model_name=used.name,
                model_version=used.version,
                start=min(item.start for item in scored) if scored else max(since.values()),
                end=until,
                windows=len(scored),
                anomalies=len(anomalies),
                readings=readings_due_count(sensors=sensors, since=since, until=until, window=window)
                if advance
                else None,
            )
        if advance:
            _watermarks_advance(outcome.scored_until)
    # The run's new alerts mailed together, once committed (a storm becomes a digest); or by the caller
    # (``mail`` False), once its own transaction is over.
    names = " + ".join(f"{model.name} v{model.version}" for model in (champion, normal) if model is not None)
    result = ScoreResult(
        used.name, used.version, len(scored), anomalies, None, models=names, opened=opened, early=len(provisional)
    )
    if mail:
        result.mail = alerts_mail_after_commit(alert_ids=opened)
    return result


def _persisting(new: list, *, window: int) -> dict:
    """Of the ``new`` anomalies (stored), each sensor's first that makes its departure a lasting one: its sensor
    flagged (by any model) in at least ANOMALY_ALERT_PERSISTENCE of its latest 2 x that many window slots, this
    one's included. As {sensor pk: (that anomaly, windows flagged, windows looked at)}.

    Why: a departure the models score just under the alert threshold, window after window (a new oscillation, for
    one), was stored as anomalies nobody was told of (the holdout's oscillation raised none). One window at 0.5 to
    0.8 is left to the anomaly list; several in a short stretch are worth someone's look. 0 turns it off.
    """
    from mlops.models import Anomaly

    needed = settings.ANOMALY_ALERT_PERSISTENCE
    if needed <= 0 or not new:
        return {}
    looked = 2 * needed
    spans = {anomaly.sensor_id: timedelta(seconds=anomaly.sensor.sampling_interval * window) for anomaly in new}
    earliest = min(anomaly.start - spans[anomaly.sensor_id] * (looked - 1) for anomaly in new)
    windows: dict[int, set[datetime]] = {}
    for sensor_id, start in Anomaly.objects.filter(
        sensor_id__in=list(spans), provisional=False, start__gte=earliest, start__lte=max(a.start for a in new)
    ).values_list("sensor_id", "start"):
        windows.setdefault(sensor_id, set()).add(start)  # one window, whichever models stored it
    flagged = {sensor_id: sorted(starts) for sensor_id, starts in windows.items()}
    found = {}
    for anomaly in sorted(new, key=lambda anomaly: anomaly.start):
        if anomaly.provisional or anomaly.sensor_id in found:
            continue
        starts = flagged.get(anomaly.sensor_id, [])
        since = anomaly.start - spans[anomaly.sensor_id] * (looked - 1)
        count = bisect.bisect_right(starts, anomaly.start) - bisect.bisect_left(starts, since)
        if count >= needed:
            found[anomaly.sensor_id] = (anomaly, count, looked)
    return found


# What a window's full verdict replaces in its provisional anomaly.
_SETTLED_FIELDS = ["end", "score", "kind", "detector", "explanation", "model_name", "model_version", "provisional"]


def _provisional_settle(found: list, scored_until: dict[int, datetime]) -> set[tuple[int, datetime]]:
    """Settle the provisional anomalies of the windows a scheduled run has now scored in full (before each sensor's
    new ``scored_until``): each becomes the window's anomaly in ``found`` (updated in place, so the alert it
    raised keeps pointing at it), or is deleted if the full verdict found none (the window ended with too few
    readings, staff raised the threshold meanwhile) or another run stored it already. Returns the windows to
    treat as new for alerts: those whose provisional score was below ANOMALY_ALERT_THRESHOLD."""
    from mlops.models import Anomaly

    pending = [
        row
        for row in Anomaly.objects.filter(provisional=True, sensor_id__in=list(scored_until))
        if row.start < scored_until[row.sensor_id]
    ]
    if not pending:
        return set()
    final = {(item.sensor_id, item.start): item for item in found}
    taken = set(
        Anomaly.objects.filter(
            provisional=False,
            sensor_id__in={row.sensor_id for row in pending},
            start__in={row.start for row in pending},
        ).values_list("sensor_id", "start", "model_name", "model_version")
    )
    fresh, settled, gone = set(), [], []
    for row in pending:
        item = final.get((row.sensor_id, row.start))
        if item is None or (item.sensor_id, item.start, item.model_name, item.model_version) in taken:
            gone.append(row.pk)
            continue
        if row.score < settings.ANOMALY_ALERT_THRESHOLD <= item.score:
            fresh.add((row.sensor_id, row.start))
        for name in _SETTLED_FIELDS:
            setattr(row, name, getattr(item, name))
        settled.append(row)
    Anomaly.objects.filter(pk__in=gone).delete()
    Anomaly.objects.bulk_update(settled, _SETTLED_FIELDS)
    return fresh


def _provisional_store(early: list, normal) -> list:
    """Store ``early`` (mlops.scoring.EarlyFlat) as provisional anomalies of the normal model; a window flagged by
    an earlier run gets the newer figures. Returns those stored for the first time (they may raise alerts)."""
    from mlops.models import Anomaly

    existing = {
        (row.sensor_id, row.start): row
        for row in Anomaly.objects.filter(
            sensor_id__in={item.sensor_pk for item in early}, start__in={item.start for item in early}
        ).select_related("sensor")
    }
    new, newer = [], []
    for item in early:
        explanation = {"supervised": None, "normal": round(item.score, 4), "ratio": round(item.ratio, 3)}
        explanation["contributions"] = item.explanation
        row = existing.get((item.sensor_pk, item.start))
        if row is None:
            new.append(
                Anomaly(
                    sensor_id=item.sensor_pk,
                    start=item.start,
                    end=item.end,
                    score=round(item.score, 4),
                    kind="stuck",
                    detector="normal",
                    explanation=explanation,
                    model_name=normal.name,
                    model_version=normal.version,
                    provisional=True,
                )
            )
        elif row.provisional:  # never a window's full verdict (an on-request run may have scored it)
            row.end, row.score, row.explanation = item.end, round(item.score, 4), explanation
            newer.append(row)
    Anomaly.objects.bulk_update(newer, ["end", "score", "explanation"])
    # A concurrent run's row for the same window and model stays (the constraint keeps one).
    Anomaly.objects.bulk_create(new, ignore_conflicts=True)
    if not new:
        return []
    keys = {(row.sensor_id, row.start) for row in new}
    stored = Anomaly.objects.filter(
        provisional=True,
        sensor_id__in={row.sensor_id for row in new},
        start__in={row.start for row in new},
        model_name=normal.name,
        model_version=normal.version,
    ).select_related("sensor")
    return [row for row in stored if (row.sensor_id, row.start) in keys]


def _watermarks_advance(scored_until: dict[int, datetime]) -> None:
    """Move each sensor's watermark forward to ``scored_until`` (never back: runs may overlap)."""
    from mlops.models import ScoringWatermark

    if not scored_until:
        return
    # One UPDATE per distinct moment (a scheduled run has one or a few), each moving only marks behind it: a
    # bulk_update of 1,000 marks (one CASE per row) took 1.2 s of a 4 s run.
    by_moment: dict[datetime, list[int]] = {}
    for pk, moment in scored_until.items():
        by_moment.setdefault(moment, []).append(pk)
    now = timezone.now()
    moved = 0
    for moment, pks in by_moment.items():
        moved += ScoringWatermark.objects.filter(sensor_id__in=pks, scored_until__lt=moment).update(
            scored_until=moment, updated_at=now
        )
    if moved == len(scored_until):  # every mark was there and behind (a scheduled run, as a rule): none to create
        return
    current = set(ScoringWatermark.objects.filter(sensor_id__in=list(scored_until)).values_list("sensor_id", flat=True))
    ScoringWatermark.objects.bulk_create(
        [
            ScoringWatermark(sensor_id=pk, scored_until=moment)
            for pk, moment in scored_until.items()
            if pk not in current
        ],
        ignore_conflicts=True,  # created meanwhile by an overlapping run: the next run moves it
    )


def scoring_forget(*, sensors: QuerySet[Sensor], using: str = "default") -> dict[type[models.Model], int]:
    """Delete what the models found on ``sensors`` (their alerts, anomalies) and where scoring them stood.

    Registered with ``readings.services.register_seed_reset``: ``seed_data --reset`` deletes the seeded
    sensors and seeds new readings over the same times. Their scoring watermarks go (the new sensors start
    afresh: the next ``score_readings`` scores their last SCORING_FIRST_RUN_HOURS, older ones on request
    with ``--from``); sensors that stay keep theirs, so their alerts staff resolved are not raised again. The
    log of scoring runs (``ScoringRun``) of every type that only the deleted sensors had goes too.
    """
    from mlops.models import Alert, Anomaly, ScoringRun, ScoringWatermark

    pks = list(sensors.values_list("pk", flat=True))
    types = set(sensors.values_list("sensor_type", flat=True))
    types -= set(Sensor.objects.using(using).exclude(pk__in=pks).values_list("sensor_type", flat=True))
    with transaction.atomic(using=using):
        return {
            Anomaly: Anomaly.objects.using(using).filter(sensor_id__in=pks).delete()[1].get(Anomaly._meta.label, 0),
            Alert: Alert.objects.using(using).filter(sensor_id__in=pks).delete()[1].get(Alert._meta.label, 0),
            ScoringWatermark: ScoringWatermark.objects.using(using).filter(sensor_id__in=pks).delete()[0],
            ScoringRun: ScoringRun.objects.using(using).filter(sensor_type__in=types).delete()[0],
        }


# --- alerts -------------------------------------------------------------------


def alert_raise(
    *, sensor: Sensor, kind: str, severity: str, title: str, detail: str = "", anomaly=None, notify: bool = True
):
    """Open an alert, or refresh the unresolved one of the same sensor and kind (never two at once).

    A new alert is mailed to subscribers after the transaction commits; with ``notify=False`` the caller
    mails the alerts it opened together (``alerts_mail_after_commit``), so that a storm becomes one digest.
    """
    from mlops.models import Alert

    now = timezone.now()
    for attempt in range(2):
        try:
            with transaction.atomic():
                alert = (
                    Alert.objects.select_for_update()
                    .filter(sensor=sensor, kind=kind)
                    .exclude(status=AlertStatus.RESOLVED)
                    .first()
                )
                if alert is not None:
                    alert.last_seen_at = now
                    if SEVERITY_RANK[severity] > SEVERITY_RANK[alert.severity]:
                        alert.severity = severity
                    alert.save(update_fields=["last_seen_at", "severity"])
                    return alert, False
                alert = Alert.objects.create(
                    sensor=sensor, kind=kind, severity=severity, title=title[:200], detail=detail, anomaly=anomaly
                )
            break
        except IntegrityError:
            # An overlapping run opened the same alert between our look and our insert (the constraint
            # alert_one_unresolved_per_sensor_kind kept one): look again, and refresh that one.
            if attempt:
                raise
    if notify:
        alerts_mail_after_commit(alert_ids=[alert.pk])
    return alert, True


def alert_acknowledge(*, alert, user) -> None:
    if alert.status == AlertStatus.OPEN:
        alert.status = AlertStatus.ACKNOWLEDGED
        alert.acknowledged_at = timezone.now()
        alert.acknowledged_by = user
        alert.save(update_fields=["status", "acknowledged_at", "acknowledged_by"])


# Callables returning a queryset of the pks of alerts that must stay unresolved (say, alerts with active work
# orders, registered by maintenance without mlops importing it): neither the rules nor staff resolve those.
_resolution_holds: list = []


def register_resolution_hold(held) -> None:
    if held not in _resolution_holds:
        _resolution_holds.append(held)


def _not_held(alerts: QuerySet) -> QuerySet:
    for held in _resolution_holds:
        alerts = alerts.exclude(pk__in=held())
    return alerts


def alert_resolve(*, alert, user=None, force: bool = False) -> None:
    """Resolve ``alert``. One held open (an active work order) is left open unless ``force``: the work order's
    completion resolves it that way."""
    if not force and alert.status != AlertStatus.RESOLVED and not _not_held(type(alert).objects.filter(pk=alert.pk)):
        return
    if alert.status != AlertStatus.RESOLVED:
        alert.status = AlertStatus.RESOLVED
        alert.resolved_at = timezone.now()
        alert.resolved_by = user
        alert.save(update_fields=["status", "resolved_at", "resolved_by"])


def alerts_check_rules(*, now: datetime | None = None) -> dict:
    """Rule-based alerts: N readings in a row outside the normal range; a stale or offline sensor.

    Alerts whose condition no longer holds are resolved (by nobody: the system). The alerts a run opens
    are mailed together once it is done: ``mail`` holds alerts_notify's counts (None while an outer
    transaction has yet to commit).
    """
    from readings.models import Reading
    from readings.selectors import fleet_status

    now = now or timezone.now()
    sensors = {sensor.sensor_id: sensor for sensor in Sensor.objects.filter(status=SensorStatus.ACTIVE)}
    opened, resolved = [], 0
    states = fleet_status(sensors=Sensor.objects.filter(pk__in=[s.pk for s in sensors.values()]), now=now)
    for state in states:
        sensor = sensors[state["sensor_id"]]
        for kind, active in (
            (AlertKind.STALE, state["connectivity"] == "stale"),
            (AlertKind.OFFLINE, state["connectivity"] == "offline"),
        ):
            if active:
                severity = AlertSeverity.CRITICAL if kind == AlertKind.OFFLINE else AlertSeverity.WARNING
                alert, new = alert_raise(
                    sensor=sensor,
                    kind=kind,
                    severity=severity,
                    title=f"{sensor.sensor_id} is {state['connectivity']}",
                    detail=f"Last reading {state['age_seconds']:.0f} s ago; "
                    f"expected every {sensor.sampling_interval} s.",
                    notify=False,
                )
                opened += [alert.pk] if new else []
            else:
                resolved += _resolve_condition(sensor, kind)
        n = settings.ALERT_OUT_OF_RANGE_READINGS
        recent = list(Reading.objects.filter(sensor=sensor).order_by("-time").values_list("value", flat=True)[:n])
        outside = len(recent) == n and all(
            (sensor.normal_min is not None and v < sensor.normal_min)
            or (sensor.normal_max is not None and v > sensor.normal_max)
            for v in recent
        )
        if outside:
            alert, new = alert_raise(
                sensor=sensor,
                kind=AlertKind.OUT_OF_RANGE,
                severity=AlertSeverity.WARNING,
                title=f"{sensor.sensor_id} outside its normal range",
                detail=f"The last {n} readings lie outside {sensor.normal_min} to {sensor.normal_max} {sensor.unit}; "
                f"latest {recent[0]}.",
                notify=False,
            )
            opened += [alert.pk] if new else []
        else:
            resolved += _resolve_condition(sensor, AlertKind.OUT_OF_RANGE)
    return {"opened": len(opened), "resolved": resolved, "mail": alerts_mail_after_commit(alert_ids=opened)}


def _resolve_condition(sensor: Sensor, kind: str) -> int:
    from mlops.models import Alert

    return _not_held(Alert.objects.filter(sensor=sensor, kind=kind).exclude(status=AlertStatus.RESOLVED)).update(
        status=AlertStatus.RESOLVED, resolved_at=timezone.now()
    )


def alerts_mail_after_commit(*, alert_ids: list[int]) -> dict[str, int] | None:
    """Mail ``alert_ids`` now if no transaction is open (and return alerts_notify's counts), else once it commits.

    Never before: a run elsewhere could not see the alerts yet, and a rollback would leave mail about nothing.
    """
    if not alert_ids:
        return None
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: alerts_notify(alert_ids=alert_ids))
        return None
    return alerts_notify(alert_ids=alert_ids)


def mail_counts_add(*counts: dict[str, int] | None) -> dict[str, int]:
    """alerts_notify's counts of several calls as one: sums of what each did, the latest of what is left."""
    total = {"sent": 0, "failed": 0, "messages": 0}
    left = {"pending": 0, "sending": 0}
    for one in counts:
        if one:
            for key in total:
                total[key] += one[key]
            left = {key: one[key] for key in left}
    return total | left


def alerts_notify(*, alert_ids: list[int] | None = None) -> dict[str, int]:
    """Mail each open alert not mailed yet to the subscribers of its severity, one message per recipient.

    Exactly once whatever runs overlap: a run first claims the alerts it will mail (rows locked with SKIP
    LOCKED and marked ``sending`` in a short transaction), sends outside any transaction, then marks each
    sent, or pending again with the attempt counted and the error kept, so the next run retries it. A claim
    older than ALERT_MAIL_CLAIM_TIMEOUT (its sender died) is taken back by the next run. Each message goes
    to one subscriber (To: that address alone), so no one sees who else is mailed, and an address the
    server refuses for now is retried alone: the alert keeps the addresses it has reached (``notified_to``).

    Returns what the run did (``sent`` alerts, ``messages`` delivered, ``failed`` alerts) and what is left
    (open alerts ``pending``, or ``sending`` in another run).
    """
    from mlops.models import AlertSubscription

    claimed, claimed_at = _alerts_claim(alert_ids=alert_ids)
    if not claimed:
        return {"sent": 0, "failed": 0, "messages": 0} | _alerts_mail_left()
    subscriptions = list(
        AlertSubscription.objects.filter(active=True, user__is_active=True)
        .exclude(user__email="")
        .select_related("user")
    )
    rank: dict[str, int] = {}  # the least severity mailed to each address (two accounts may share one)
    for sub in subscriptions:
        rank[sub.user.email] = min(
            rank.get(sub.user.email, SEVERITY_RANK[sub.min_severity]), SEVERITY_RANK[sub.min_severity]
        )
    wanted = {
        alert.pk: {email for email, least in rank.items() if SEVERITY_RANK[alert.severity] >= least}
        for alert in claimed
    }
    reached = {alert.pk: set(alert.notified_to) for alert in claimed}
    # A storm (more than ALERT_DIGEST_THRESHOLD alerts for one subscriber in one run: a site gone stale, or
    # the backlog of an SMTP outage) is one digest to that subscriber; fewer are one message each.
    plan = []
    for email in sorted(rank):
        theirs = [alert for alert in claimed if email in wanted[alert.pk] - reached[alert.pk]]
        if len(theirs) > settings.ALERT_DIGEST_THRESHOLD:
            plan.append((email, theirs))
        else:
            plan += [(email, [alert]) for alert in theirs]

    messages, refused, error = 0, {}, None
    # One connection for the run. A failure other than a refused address ends the run's sending: with SMTP
    # down or hung, each further message would only wait EMAIL_TIMEOUT again; the next run retries them.
    connection = get_connection(fail_silently=False)
    # Past half the claim timeout this run starts no new message, so that no other run takes back a claim
    # while its mail is still going out.
    deadline = time.monotonic() + settings.ALERT_MAIL_CLAIM_TIMEOUT / 2
    try:
        for email, alerts in plan:
            if time.monotonic() > deadline:
                break
            try:
                messages += _alert_message(alerts, to=email, connection=connection).send()
            except smtplib.SMTPRecipientsRefused as exc:  # this address, for now: the others still go out
                refused.update((alert.pk, exc) for alert in alerts)
                continue
            except Exception as exc:  # any SMTP or network failure: what is not sent stays pending
                error = exc
                break
            for alert in alerts:
                reached[alert.pk].add(email)
                # Recorded at once, not when the run ends: should this run die now (killed, its worker lost and
                # the task redelivered), the run that takes the claim back mails only the addresses not reached.
                _alert_mail_reached(alert, claimed_at, notified_to=sorted(reached[alert.pk]))
    finally:
        _smtp_close(connection, failed=error is not None)

    sent = failed = 0
    for alert in claimed:
        done = sorted(reached[alert.pk])
        if not wanted[alert.pk]:
            _alert_mail_finish(alert, claimed_at, state=AlertMailState.NO_RECIPIENTS)
        elif wanted[alert.pk] <= reached[alert.pk]:
            _alert_mail_finish(alert, claimed_at, state=AlertMailState.SENT, notified_to=done)
            sent += 1
        elif alert.pk in refused or error is not None:
            failure = refused.get(alert.pk, error)
            _alert_mail_finish(alert, claimed_at, state=AlertMailState.PENDING, error=failure, notified_to=done)
            failed += 1
        else:  # past the deadline before its turn: not tried, left to the next run
            _alert_mail_finish(alert, claimed_at, state=AlertMailState.PENDING, attempted=False, notified_to=done)
    return {"sent": sent, "failed": failed, "messages": messages} | _alerts_mail_left()


def _alert_message(alerts: list, *, to: str, connection) -> EmailMessage:
    """One alert's mail, or the digest of several: by severity (highest first), then kind, each with its link."""
    if len(alerts) == 1:
        (alert,) = alerts
        return EmailMessage(
            subject=f"[Smart Maintenance] {alert.get_severity_display()}: {alert.title}",
            body=f"{alert.title}\n\n{alert.detail}\n\nSensor: {alert.sensor.sensor_id}\n"
            f"Opened: {alert.opened_at:%Y-%m-%d %H:%M} UTC\n{_alert_link(alert)}\n",
            to=[to],
            connection=connection,
        )
    severities = sorted({alert.severity for alert in alerts}, key=SEVERITY_RANK.get, reverse=True)
    counts = {severity: sum(alert.severity == severity for alert in alerts) for severity in severities}
    lines = [
        f"{len(alerts)} new alerts, listed in one mail instead of one mail each.",
        f"Open alerts: {settings.SITE_URL}{reverse('admin:mlops_alert_changelist')}?status__exact=open",
    ]
    for severity in severities:
        lines += ["", f"{AlertSeverity(severity).label} ({counts[severity]})"]
        of_severity = [alert for alert in alerts if alert.severity == severity]
        for kind in sorted({alert.kind for alert in of_severity}):
            of_kind = [alert for alert in of_severity if alert.kind == kind]
            lines.append(f"  {AlertKind(kind).label} ({len(of_kind)})")
            lines += [
                f"  - {alert.title} (opened {alert.opened_at:%Y-%m-%d %H:%M} UTC)\n    {_alert_link(alert)}"
                for alert in sorted(of_kind, key=lambda alert: alert.sensor.sensor_id)
            ]
    summary = ", ".join(f"{counts[severity]} {severity}" for severity in severities)
    return EmailMessage(
        subject=f"[Smart Maintenance] {len(alerts)} new alerts: {summary}",
        body="\n".join(lines) + "\n",
        to=[to],
        connection=connection,
    )


def _alert_link(alert) -> str:
    return f"{settings.SITE_URL}{reverse('admin:mlops_alert_change', args=[alert.pk])}"


def _alerts_mail_left() -> dict[str, int]:
    """Open alerts whose mail has not gone out: waiting for a run (``pending``), or in one now (``sending``)."""
    from mlops.models import Alert

    left = dict(
        Alert.objects.filter(status=AlertStatus.OPEN, notify_state__in=[AlertMailState.PENDING, AlertMailState.SENDING])
        .values_list("notify_state")
        .annotate(n=models.Count("pk"))
        .order_by()
    )
    return {"pending": left.get(AlertMailState.PENDING, 0), "sending": left.get(AlertMailState.SENDING, 0)}


def _smtp_close(connection, *, failed: bool) -> None:
    """Close the run's SMTP connection; after a failure without QUIT, which a hung server would not answer either."""
    raw = getattr(connection, "connection", None)  # the smtplib.SMTP of Django's SMTP backend, if open
    if failed and raw is not None:
        raw.close()
        connection.connection = None
    try:
        connection.close()
    except Exception as exc:  # the mail went out (or was recorded as failed): a failing goodbye changes nothing
        logger.warning("Closing the SMTP connection failed: %s", exc)


def _alerts_claim(*, alert_ids: list[int] | None) -> tuple[list, datetime]:
    """Mark the alerts this run will mail as ``sending`` (claimed now); rows another run holds are skipped."""
    from mlops.models import Alert

    now = timezone.now()
    expired = now - timedelta(seconds=settings.ALERT_MAIL_CLAIM_TIMEOUT)
    due = models.Q(notify_next_at__isnull=True) | models.Q(notify_next_at__lte=now)  # failed sends back off
    to_mail = Alert.objects.filter(status=AlertStatus.OPEN).filter(
        (models.Q(notify_state=AlertMailState.PENDING) & due)
        | models.Q(notify_state=AlertMailState.SENDING, notify_claimed_at__lt=expired)
    )
    if alert_ids is not None:
        to_mail = to_mail.filter(pk__in=alert_ids)
    with transaction.atomic():
        rows = list(to_mail.select_for_update(skip_locked=True).values_list("pk", "notify_state"))
        pks = [pk for pk, _ in rows]
        if pks:
            Alert.objects.filter(pk__in=pks).update(notify_state=AlertMailState.SENDING, notify_claimed_at=now)
    for pk, state in rows:
        if state == AlertMailState.SENDING:
            logger.warning("Alert %s: claimed for mail before %s and never finished; mailing it again.", pk, expired)
    return list(Alert.objects.filter(pk__in=pks).select_related("sensor").order_by("pk")), now


def _alert_mail_reached(alert, claimed_at: datetime, *, notified_to: list[str]) -> None:
    """Record the addresses ``alert``'s mail has reached so far, while this run's claim on it holds."""
    from mlops.models import Alert

    Alert.objects.filter(pk=alert.pk, notify_state=AlertMailState.SENDING, notify_claimed_at=claimed_at).update(
        notified_to=notified_to
    )


def alert_mail_retry_delay(attempts: int) -> timedelta:
    """How long an alert whose mail failed ``attempts`` times waits before a mail run tries it again.

    None after the first failure (the next run tries again: a blip), then ALERT_MAIL_RETRY_BACKOFF seconds,
    doubling with each further failure up to ALERT_MAIL_RETRY_BACKOFF_MAX: an SMTP server down for hours, or an
    address refused for good, is not tried every minute.
    """
    if attempts <= 1:
        return timedelta(0)
    seconds = settings.ALERT_MAIL_RETRY_BACKOFF * 2 ** min(attempts - 2, 30)
    return timedelta(seconds=min(seconds, settings.ALERT_MAIL_RETRY_BACKOFF_MAX))


def _alert_mail_finish(
    alert,
    claimed_at: datetime,
    *,
    state: str,
    error: Exception | None = None,
    attempted: bool = True,
    notified_to: list[str] | None = None,
) -> None:
    """Record how this run's claim on ``alert`` ended: sent (or nobody to mail) or pending again after a failure.

    Only while the claim is still this run's: should it have been taken back meanwhile, the run that took it
    records the outcome.
    """
    from mlops.models import Alert

    fields: dict = {"notify_state": state, "notify_claimed_at": None}
    if notified_to is not None:
        fields["notified_to"] = notified_to
    if not attempted:
        pass
    elif state == AlertMailState.NO_RECIPIENTS:
        fields.update(notified_at=timezone.now(), notify_error="")
    else:
        fields["notify_attempts"] = models.F("notify_attempts") + 1
        if error is None:
            fields.update(notified_at=timezone.now(), notify_error="", notify_next_at=None)
        else:
            attempt = alert.notify_attempts + 1
            fields["notify_error"] = f"{type(error).__name__}: {error}"[:1000]
            fields["notify_next_at"] = timezone.now() + alert_mail_retry_delay(attempt)
            logger.warning("Alert %s not mailed (attempt %s): %s", alert.pk, attempt, error)
    mine = Alert.objects.filter(pk=alert.pk, notify_state=AlertMailState.SENDING, notify_claimed_at=claimed_at)
    if not mine.update(**fields):
        logger.warning("Alert %s: the claim of this run was taken back before its mail finished.", alert.pk)


def scoring_runs_prune(*, now: datetime | None = None) -> dict[str, int]:
    """Delete the scoring runs logged more than SCORING_RUNS_KEEP_DAYS ago (the Prune scoring runs job).

    The log grows by one row per sensor type and scheduled run (about 11,000 a day at a one-minute cadence);
    nothing reads old runs but staff looking back (the flags use each type's latest run). Where scoring
    continues is the watermarks, which this never touches.
    """
    from mlops.models import ScoringRun

    cutoff = (now or timezone.now()) - timedelta(days=settings.SCORING_RUNS_KEEP_DAYS)
    deleted, _ = ScoringRun.objects.filter(created_at__lt=cutoff).delete()
    return {"deleted": deleted}

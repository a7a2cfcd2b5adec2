"""Reads for training and scoring (series, ground truth), and for the pages and the API (anomalies, alerts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import numpy as np
from django.db import connections
from django.db.models import Count, Q, QuerySet

from mlops.choices import AlertStatus
from mlops.features import Series
from mlops.models import Alert, Anomaly
from readings.choices import FaultKind
from readings.models import FaultLabel
from readings.selectors import readings_shown
from sensors.models import Asset, Sensor

# A degradation episode is the machine, not the sensor: it is neither a fault
# to find nor normal behaviour, so its windows are left out of training and evaluation.
UNLABELLED_KINDS = {FaultKind.DEGRADATION}


def readings_due_count(*, sensors: list[Sensor], since: dict[int, datetime], until: datetime, window: int) -> int:
    """Readings of ``sensors`` that a scheduled run scoring them from ``since`` (watermarks, by pk) to ``until``
    must have scored: stamped from the latest watermark (every sensor's windows from there are unscored) to
    ``until`` less the longest window of them and SCORING_GRACE_SECONDS (every window holding such a reading had
    ended and waited out the grace: ready). One count over an indexed range; 0 where the range is empty.

    Readings still in a window that is not ready yet do not count: at a cadence shorter than a window most runs
    rightly score none while readings arrive.
    """
    from datetime import timedelta

    from django.conf import settings

    from readings.models import Reading

    if not sensors or not since:
        return 0
    longest = max(sensor.sampling_interval for sensor in sensors) * window
    first = max(since.values())
    last = until - timedelta(seconds=longest + settings.SCORING_GRACE_SECONDS)
    if last <= first:
        return 0
    return Reading.objects.filter(sensor__in=[sensor.pk for sensor in sensors], time__gte=first, time__lt=last).count()


def scoring_due(*, window: int, using: str = "default") -> bool:
    """Whether a scheduled scoring run would find a window to score now, asked cheaply (the ingest side asks it
    before queueing one, so that readings arriving every few seconds do not keep a scoring worker busy with runs
    that find nothing): some active sensor's window after its watermark has ended and holds its last reading
    (its readings are in), or an active sensor with readings was never scored. One query, an index probe per
    sensor; on databases other than PostgreSQL always true.

    It may say yes where a run then scores nothing (a peer's window not ready yet), and no where a window is
    ready only because the grace ran out (a reading missing and none after it): the scheduled runs score those.
    """
    from mlops.models import ScoringWatermark
    from readings.models import Reading
    from sensors.choices import SensorStatus

    connection = connections[using]
    if connection.vendor != "postgresql":
        return True
    sql = f"""
        SELECT EXISTS (
            SELECT 1 FROM {Sensor._meta.db_table} s
            LEFT JOIN {ScoringWatermark._meta.db_table} w ON w.sensor_id = s.id
            WHERE s.status = %(active)s AND (
                (w.sensor_id IS NULL AND EXISTS (SELECT 1 FROM {Reading._meta.db_table} r WHERE r.sensor_id = s.id))
                OR (
                    w.scored_until + make_interval(secs => s.sampling_interval * %(window)s) <= now()
                    AND EXISTS (
                        SELECT 1 FROM {Reading._meta.db_table} r
                        WHERE r.sensor_id = s.id
                        AND r.time >= w.scored_until + make_interval(secs => s.sampling_interval * (%(window)s - 1))
                    )
                )
            )
        )
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"active": SensorStatus.ACTIVE, "window": window})
        return bool(cursor.fetchone()[0])


def scoring_runs_flagged(*, using: str = "default") -> list:
    """The "Score readings" job's own flags (registered with smartmaint.jobs): each sensor type whose latest
    scheduled run scored 0 windows while readings were due (``ScoringRun.flagged``). A later run that scores
    clears it. One indexed query per type."""
    from django.urls import reverse

    from mlops.models import ScoringRun
    from sensors.choices import SensorType
    from smartmaint.jobs import JobFlag

    runs = ScoringRun.objects.using(using).filter(readings__isnull=False)
    url = f"{reverse('admin:mlops_scoringrun_changelist')}?flagged=yes"
    flags = []
    for sensor_type in SensorType.values:
        run = runs.filter(sensor_type=sensor_type).order_by("-end").first()
        if run is not None and run.flagged:
            problem = (
                f"the latest {sensor_type} scoring run ({run.end:%Y-%m-%d %H:%M}) scored 0 windows "
                f"while {run.readings} reading(s) were due"
            )
            flags.append(JobFlag("Score readings", problem, url))
    return flags


def peer_group(*, site: str, model) -> str:
    """The peer group of an asset's sensors: its site, and its machine model where its metadata names one.

    An asset without a ``model`` in its metadata is grouped with the other assets of its site without one.
    """
    return f"site={site!r}" if model in (None, "") else f"site={site!r} model={str(model)!r}"


def sensor_peer_groups(sensors: list[Sensor]) -> dict[int, str | None]:
    """The peer group of each sensor (by pk; see ``mlops.features``), from the fleet (two short queries).

    The group of its asset (``peer_group``) when another sensor of its type is in that group; None (every
    sensor of its type is a peer) when it is the only one: the fleet's composition decides, not which sensors
    have readings, so training and every scoring run see the same peers.
    """
    types = {sensor.sensor_type for sensor in sensors}
    counts: dict[tuple[str, str], int] = {}
    for sensor_type, site, model, number in (
        Sensor.objects.filter(sensor_type__in=types)
        .values_list("sensor_type", "asset__site", "asset__metadata__model")
        .annotate(number=Count("pk"))
        .order_by()
    ):
        key = (sensor_type, peer_group(site=site, model=model))
        counts[key] = counts.get(key, 0) + number
    assets = {
        pk: peer_group(site=site, model=model)
        for pk, site, model in Asset.objects.filter(pk__in={sensor.asset_id for sensor in sensors}).values_list(
            "pk", "site", "metadata__model"
        )
    }
    groups = {}
    for sensor in sensors:
        group = assets[sensor.asset_id]
        groups[sensor.pk] = group if counts.get((sensor.sensor_type, group), 0) > 1 else None
    return groups


def sensor_series(
    *,
    sensors: QuerySet[Sensor] | list[Sensor],
    start: datetime | None,
    end: datetime | None,
    starts: dict[int, datetime] | None = None,
    peer_groups: dict[int, str | None] | None = None,
) -> list[Series]:
    """The readings of ``sensors`` with start <= time < end, as numpy series (one query), with their peer groups.

    ``starts`` gives a sensor (by pk) its own start instead: each sensor's look-back follows its own sampling
    interval. Sensors sharing a start share one condition, so the query stays short on a large fleet.
    ``peer_groups``: the sensors' groups when the caller has them already (``sensor_peer_groups``).
    """
    sensors = list(sensors)
    if not sensors:
        return []
    readings = readings_shown()
    if starts is not None:
        by_start: dict[datetime, list[int]] = {}
        for sensor in sensors:
            by_start.setdefault(starts[sensor.pk], []).append(sensor.pk)
        condition = Q()
        for moment, pks in by_start.items():
            condition |= Q(sensor__in=pks, time__gte=moment)
        readings = readings.filter(condition)
    else:
        readings = readings.filter(sensor__in=[sensor.pk for sensor in sensors])
    if start is not None:
        readings = readings.filter(time__gte=start)
    if end is not None:
        readings = readings.filter(time__lt=end)
    groups = peer_groups if peer_groups is not None else sensor_peer_groups(sensors)
    columns = _readings_columns(readings.values_list("sensor_id", "time", "value", "quality"))
    return [
        Series(
            sensor_pk=sensor.pk,
            sensor_type=sensor.sensor_type,
            interval=sensor.sampling_interval,
            normal_min=sensor.normal_min,
            normal_max=sensor.normal_max,
            times=columns[sensor.pk][0],
            values=columns[sensor.pk][1],
            quality=columns[sensor.pk][2],
            asset_pk=sensor.asset_id,
            peer_group=groups[sensor.pk],
        )
        for sensor in sensors
        if sensor.pk in columns
    ]


_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")
# One reading as the server sends it below: timestamptz_send (microseconds from 2000-01-01), then float8send twice.
_PG_READING = np.dtype([("time", ">i8"), ("value", ">f8"), ("quality", ">f8")])


def _readings_columns(rows: QuerySet) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per sensor pk: its times (datetime64[us], UTC), values and qualities in time order, from ``rows`` (a
    values_list of sensor_id, time, value, quality).

    On PostgreSQL each sensor's readings come as one byte string, their binary send formats concatenated by the
    server, read straight into numpy: a Python datetime per reading took most of a scoring run (975,000
    readings: 8 s of 14), and even a binary COPY took 2.3 s (libpq hands it over row by row). Elsewhere, row by row.
    """
    connection = connections[rows.db]
    if connection.vendor == "postgresql":
        # In time order from the subquery, as PostgreSQL aggregates sorted input; checked below all the same.
        query = connection.ops.compose_sql(*rows.order_by("sensor_id", "time").query.sql_with_params())
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT sensor_id, string_agg(timestamptz_send(time) || float8send(value) || float8send(quality), "
                f"''::bytea) FROM ({query}) AS r GROUP BY sensor_id"
            )
            found = cursor.fetchall()
        columns = {}
        for pk, blob in found:
            table = np.frombuffer(blob, dtype=_PG_READING)
            times = table["time"].astype(np.int64)
            if len(times) > 1 and (np.diff(times) < 0).any():
                table = table[np.argsort(times, kind="stable")]
                times = table["time"].astype(np.int64)
            columns[pk] = (
                _PG_EPOCH + times.astype("timedelta64[us]"),
                table["value"].astype(np.float64),
                table["quality"].astype(np.float64),
            )
        return columns
    lists: dict[int, tuple[list, list, list]] = {}
    for sensor_pk, time, value, quality in rows.order_by("sensor_id", "time").iterator(chunk_size=20_000):
        times, values, qualities = lists.setdefault(sensor_pk, ([], [], []))
        times.append(time.astimezone(UTC).replace(tzinfo=None))
        values.append(value)
        qualities.append(quality)
    return {
        pk: (
            np.array(times, dtype="datetime64[us]"),
            np.array(values, dtype=np.float64),
            np.array(qualities, dtype=np.float64),
        )
        for pk, (times, values, qualities) in lists.items()
    }


def fault_labels(*, sensor_pks: list[int], start: datetime | None, end: datetime | None) -> list[FaultLabel]:
    labels = FaultLabel.objects.filter(sensor_id__in=sensor_pks)
    if start is not None:
        labels = labels.filter(end__gte=start)
    if end is not None:
        labels = labels.filter(start__lt=end)
    return list(labels.order_by("sensor_id", "start"))


def anomalies_list(*, sensors: QuerySet[Sensor]) -> QuerySet[Anomaly]:
    return Anomaly.objects.filter(sensor__in=sensors).select_related("sensor", "sensor__asset")


def alerts_unresolved() -> QuerySet[Alert]:
    return Alert.objects.exclude(status=AlertStatus.RESOLVED).select_related("sensor", "sensor__asset")


def anomaly_chart_marks(*, sensor: Sensor, start: datetime, end: datetime) -> list[dict]:
    """Anomalies to mark on a sensor's chart in the admin (registered with readings.selectors)."""
    anomalies = Anomaly.objects.filter(sensor=sensor, start__lt=end, end__gte=start).order_by("start")
    return [_anomaly_mark(anomaly) for anomaly in anomalies[:1000]]


def anomaly_chart_marks_many(*, sensors: list[Sensor], start: datetime, end: datetime) -> dict[int, list[dict]]:
    """``anomaly_chart_marks`` of each of ``sensors`` in one query (the asset page charts all of its sensors)."""
    marks: dict[int, list[dict]] = {sensor.pk: [] for sensor in sensors}
    anomalies = Anomaly.objects.filter(sensor__in=list(marks), start__lt=end, end__gte=start).order_by("start")
    for anomaly in anomalies:
        if len(marks[anomaly.sensor_id]) < 1000:
            marks[anomaly.sensor_id].append(_anomaly_mark(anomaly))
    return marks


def _anomaly_mark(anomaly: Anomaly) -> dict:
    return {
        "series": "Anomalies",
        "label": f"score {anomaly.score:.2f} ({anomaly.model_name} v{anomaly.model_version})",
        "start": anomaly.start,
        "end": anomaly.end,
    }


def dashboard_alerts(*, limit: int, sites: list[str] | None = None) -> list[dict]:
    """Unresolved alerts for the dashboard (of ``sites``; None: all), most severe and newest first (registered
    with readings.selectors)."""
    from django.urls import reverse

    alerts = alerts_unresolved()
    if sites is not None:
        alerts = alerts.filter(sensor__asset__site__in=sites)
    alerts = alerts.annotate(rank=severity_rank()).order_by("-rank", "-opened_at")[:limit]
    return [
        {
            "sensor_id": alert.sensor.sensor_id,
            "title": alert.title,
            "severity": alert.severity,
            "severity_label": alert.get_severity_display(),
            "status": alert.status,
            "status_label": alert.get_status_display(),
            "opened_at": alert.opened_at,
            "url": reverse("admin:mlops_alert_change", args=[alert.pk]),
            "sensor_url": reverse("admin:sensors_sensor_change", args=[alert.sensor_id]),
        }
        for alert in alerts
    ]


def severity_rank():
    """Critical 2, warning 1, info 0: an expression to sort alerts by severity (by rank, not alphabetically)."""
    from django.db.models import Case, IntegerField, Value, When

    from mlops.choices import SEVERITY_RANK

    return Case(
        *(When(severity=severity, then=Value(value)) for severity, value in SEVERITY_RANK.items()),
        output_field=IntegerField(),
    )


UNRESOLVED_QUERY = "status__in=open,acknowledged"
ALERT_GROUPS_SHOWN = 12


def alerts_summary(*, sites: list[str] | None = None) -> dict:
    """Open (unresolved) alerts counted by severity and by kind, and grouped by kind and site, most severe and
    largest first, each with a link to the alert list filtered to it: one grouped query, however many alerts a
    fleet-wide condition opened (registered with readings.selectors for the dashboard). ``sites``: the alerts
    of those sites only (None: every site)."""
    from django.db.models import Max
    from django.urls import reverse

    from mlops.choices import SEVERITY_RANK, AlertKind, AlertSeverity

    base = reverse("admin:mlops_alert_changelist")
    unresolved = Alert.objects.exclude(status=AlertStatus.RESOLVED)
    if sites is not None:
        unresolved = unresolved.filter(sensor__asset__site__in=sites)
    rows = list(
        unresolved.values_list("severity", "kind", "sensor__asset__site")
        .annotate(number=Count("pk"), newest=Max("opened_at"))
        .order_by()
    )
    by_severity = {value: 0 for value in AlertSeverity.values}
    by_kind = {value: 0 for value in AlertKind.values}
    groups: dict[tuple[str, str], dict] = {}
    for severity, kind, site, number, newest in rows:
        by_severity[severity] = by_severity.get(severity, 0) + number
        by_kind[kind] = by_kind.get(kind, 0) + number
        group = groups.setdefault(
            (kind, site), {"kind": kind, "site": site, "count": 0, "severity": severity, "newest": newest}
        )
        group["count"] += number
        group["newest"] = max(group["newest"], newest)
        if SEVERITY_RANK.get(severity, 0) > SEVERITY_RANK.get(group["severity"], 0):
            group["severity"] = severity
    severity_labels, kind_labels = dict(AlertSeverity.choices), dict(AlertKind.choices)
    ordered = sorted(
        groups.values(), key=lambda g: (-SEVERITY_RANK.get(g["severity"], 0), -g["count"], g["kind"], g["site"])
    )
    for group in ordered:
        group["kind_label"] = kind_labels.get(group["kind"], group["kind"])
        group["severity_label"] = severity_labels.get(group["severity"], group["severity"])
        group["url"] = f"{base}?{UNRESOLVED_QUERY}&kind__exact={group['kind']}&" + urlencode(
            {"sensor__asset__site__exact": group["site"]}
        )
    severities = sorted(by_severity, key=lambda value: -SEVERITY_RANK.get(value, 0))
    return {
        "total": sum(by_severity.values()),
        "by_severity": [
            {
                "value": value,
                "label": severity_labels.get(value, value),
                "count": by_severity[value],
                "url": f"{base}?{UNRESOLVED_QUERY}&severity__exact={value}",
            }
            for value in severities
        ],
        "by_kind": [
            {
                "value": value,
                "label": kind_labels.get(value, value),
                "count": count,
                "url": f"{base}?{UNRESOLVED_QUERY}&kind__exact={value}",
            }
            for value, count in by_kind.items()
            if count
        ],
        "groups": ordered[:ALERT_GROUPS_SHOWN],
        "group_total": len(ordered),
        "list_url": f"{base}?{UNRESOLVED_QUERY}",
    }


SENSOR_EVENTS_SHOWN = 10


def sensor_events(*, sensor: Sensor) -> list[dict]:
    """The sensor page's sections (registered with readings.selectors): the sensor's unresolved alerts, most
    severe first, and its most recent anomalies with their scores, each linking to its page and to the full
    list filtered to the sensor."""
    from django.urls import reverse

    alerts = (
        Alert.objects.filter(sensor=sensor)
        .exclude(status=AlertStatus.RESOLVED)
        .annotate(rank=severity_rank())
        .order_by("-rank", "-opened_at")
    )
    shown_alerts = list(alerts[: SENSOR_EVENTS_SHOWN + 1])
    anomalies = list(Anomaly.objects.filter(sensor=sensor).order_by("-start")[: SENSOR_EVENTS_SHOWN + 1])
    alert_list = reverse("admin:mlops_alert_changelist")
    anomaly_list = reverse("admin:mlops_anomaly_changelist")
    return [
        {
            "id": "sm-sensor-alerts",
            "title": "Open alerts",
            "empty": "No open alerts.",
            "rows": [
                {
                    "text": alert.title,
                    "url": reverse("admin:mlops_alert_change", args=[alert.pk]),
                    "time": alert.opened_at,
                    "badges": [
                        (alert.severity, alert.get_severity_display()),
                        (f"alert-{alert.status}", alert.get_status_display()),
                    ],
                }
                for alert in shown_alerts[:SENSOR_EVENTS_SHOWN]
            ],
            "more": len(shown_alerts) > SENSOR_EVENTS_SHOWN,
            "list_url": f"{alert_list}?sensor__id__exact={sensor.pk}",
            "list_label": "All alerts of this sensor",
        },
        {
            "id": "sm-sensor-anomalies",
            "title": "Recent anomalies",
            "empty": "No anomalies found by the models.",
            "rows": [
                {
                    "text": f"score {anomaly.score:.2f}: {_anomaly_kind(anomaly.kind)}",
                    "url": reverse("admin:mlops_anomaly_change", args=[anomaly.pk]),
                    "time": anomaly.start,
                    "badges": [],
                    "score": anomaly.score,
                }
                for anomaly in anomalies[:SENSOR_EVENTS_SHOWN]
            ],
            "more": len(anomalies) > SENSOR_EVENTS_SHOWN,
            "list_url": f"{anomaly_list}?sensor__id__exact={sensor.pk}",
            "list_label": "All anomalies of this sensor",
        },
    ]


def _anomaly_kind(kind: str) -> str:
    return FaultKind(kind).label if kind in FaultKind.values else "departure from normal"


def alert_condition_active(alert: Alert, *, now: datetime | None = None) -> str:
    """Why ``alert``'s condition still holds ("" when it no longer does, or cannot be told): resolving it then
    only brings it back at the next rule check (or scoring run), with a new mail."""
    from django.conf import settings
    from django.utils import timezone

    from mlops.choices import AlertKind
    from readings.selectors import fleet_status

    if alert.status == AlertStatus.RESOLVED:
        return ""
    now = now or timezone.now()
    sensor = alert.sensor
    if alert.kind in (AlertKind.STALE, AlertKind.OFFLINE):
        [state] = fleet_status(sensors=Sensor.objects.filter(pk=sensor.pk), now=now)
        if state["connectivity"] == alert.kind:
            if state["time"] is None:
                return f"{sensor.sensor_id} has no readings."
            return f"{sensor.sensor_id} is {alert.kind}, its last reading {state['age_seconds']:.0f} s old."
        return ""
    if alert.kind == AlertKind.OUT_OF_RANGE:
        n = settings.ALERT_OUT_OF_RANGE_READINGS
        recent = list(readings_shown().filter(sensor=sensor).order_by("-time").values_list("value", flat=True)[:n])
        low, high = sensor.normal_min, sensor.normal_max
        if len(recent) == n and all((low is not None and v < low) or (high is not None and v > high) for v in recent):
            return f"the last {n} readings of {sensor.sensor_id} are outside its normal range (latest {recent[0]})."
        return ""
    if alert.kind == AlertKind.ANOMALY:
        newest = Anomaly.objects.filter(sensor=sensor).order_by("-end").values_list("end", flat=True).first()
        if newest is not None and newest >= alert.last_seen_at and now - newest <= timedelta(hours=1):
            return f"the models still find anomalies on {sensor.sensor_id} (latest ending {newest:%Y-%m-%d %H:%M})."
    return ""

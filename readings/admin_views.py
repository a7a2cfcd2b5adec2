"""The admin console's own pages and page parts: the fleet dashboard, the sensor page's chart, the readings
browser and the CSV exports. They parse input, call selectors and format output."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, JsonResponse, QueryDict
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.timesince import timesince

from readings.aggregates import bucket_floor, bucket_name
from readings.models import Reading
from readings.selectors import (
    alert_summaries,
    alerts_enabled,
    attention_items,
    chart_bucket,
    dashboard_flags,
    fleet_status,
    plant_tree,
    readings_page,
    readings_recent_count,
    sensor_chart,
    sensor_charts,
    sensor_events,
    sensor_interval,
)
from sensors.choices import AssetStatus, SensorStatus
from sensors.models import Asset, Sensor
from sensors.selectors import user_sites, within_user_sites

RANGES: dict[str, tuple[str, timedelta]] = {
    "1h": ("1 hour", timedelta(hours=1)),
    "24h": ("24 hours", timedelta(hours=24)),
    "7d": ("7 days", timedelta(days=7)),
    "30d": ("30 days", timedelta(days=30)),
}
DEFAULT_RANGE = "24h"
CUSTOM_RANGE = "custom"
LATEST_ROWS = 10
PAGE_SIZES = (50, 100, 500)
# The dashboard lists this many of the most severe open alerts; the totals and groups above them count the rest.
DASHBOARD_ALERTS_SHOWN = 10
CONNECTIVITY = (("online", "Online"), ("stale", "Stale"), ("offline", "Offline"), ("no_data", "No data"))


# --- Ranges -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartRange:
    """[start, end) of a chart or an export; ``anchored`` when it ends at the sensor's last reading, not now."""

    key: str
    start: datetime
    end: datetime
    anchored: bool = False
    error: str = ""

    @property
    def label(self) -> str:
        return RANGES[self.key][0] if self.key in RANGES else "chosen range"

    def query(self) -> str:
        """The same range as explicit bounds, for links (CSV, readings browser) that must cover exactly it."""
        return urlencode({"from": self.start.isoformat(), "to": self.end.isoformat()})


def parse_moment(value: str | None) -> datetime | None:
    """An ISO 8601 or datetime-local value; without an offset it is in the current time zone."""
    if not value:
        return None
    return forms.DateTimeField().clean(value)


def chart_range(
    params: QueryDict | dict, *, last_time: datetime | None, now: datetime, interval: timedelta | None = None
) -> ChartRange:
    """The range asked for by ``params``: ``range`` (1h, 24h, 7d, 30d; default 24h) or ``from``/``to``.

    A preset range ends now, or at the sensor's last reading when that is older than the range, so a sensor
    that has gone quiet shows its last signal rather than an empty chart. Bad custom bounds fall back to the
    default range with ``error`` set. ``interval`` is the sensor's sampling interval (see ``chart_bucket``).
    """
    key = params.get("range") or (CUSTOM_RANGE if params.get("from") or params.get("to") else DEFAULT_RANGE)
    if key == CUSTOM_RANGE:
        try:
            end = parse_moment(params.get("to")) or now
            start = parse_moment(params.get("from")) or end - RANGES[DEFAULT_RANGE][1]
        except ValidationError:
            error = "Enter the custom range's bounds as dates and times, e.g. 2026-01-31T08:00."
        else:
            if start < end:
                return ChartRange(CUSTOM_RANGE, start, end)
            error = "The custom range must start before it ends."
        return ChartRange(DEFAULT_RANGE, now - RANGES[DEFAULT_RANGE][1], now, error=error)
    if key not in RANGES:
        key = DEFAULT_RANGE
    span = RANGES[key][1]
    if last_time is not None and last_time < now - span:
        bucket = chart_bucket(span, interval=interval)
        end = bucket_floor(last_time, bucket) + bucket
        return ChartRange(key, end - span, end, anchored=True)
    return ChartRange(key, now - span, now)


# --- Dashboard --------------------------------------------------------------------------------------------------


def _counts_by_status(rows, choices) -> list[dict]:
    counts = dict(rows.order_by().values_list("status").annotate(n=Count("pk")))
    return [{"value": value, "label": label, "count": counts.get(value, 0)} for value, label in choices.choices]


def dashboard_context(request) -> dict:
    """What the dashboard shows; nothing for a user who may not view sensors."""
    if not request.user.has_perm("sensors.view_sensor"):
        return {}
    now = timezone.now()
    sites = user_sites(request.user)
    states = fleet_status(sensors=within_user_sites(Sensor.objects.all(), request.user, site="asset__site"), now=now)
    connectivity = Counter(state["connectivity"] for state in states)
    assets = _counts_by_status(within_user_sites(Asset.objects.all(), request.user), AssetStatus)
    sensors = _counts_by_status(within_user_sites(Sensor.objects.all(), request.user, site="asset__site"), SensorStatus)
    attention = attention_items(states=states, sites=sites)
    for item in attention["items"]:
        item["age"] = timesince(item["time"], now, depth=1) if item["time"] else ""
    return {
        "dashboard": {
            "generated_at": now,
            "assets": assets,
            "asset_total": sum(row["count"] for row in assets),
            "sensors": sensors,
            "sensor_total": sum(row["count"] for row in sensors),
            "connectivity": [
                {"value": value, "label": label, "count": connectivity.get(value, 0)} for value, label in CONNECTIVITY
            ],
            "out_of_range": sum(1 for state in states if state["out_of_range"]),
            "readings_24h": readings_recent_count(now=now, sites=sites),
            "attention": attention,
            "alerts_enabled": alerts_enabled(),
            "alert_summaries": alert_summaries(sites=sites),
            "alerts_shown": DASHBOARD_ALERTS_SHOWN,
            "live_every": LIVE_EVERY_SECONDS,
            "flags": dashboard_flags(user=request.user),
        }
    }


# --- Sensor page ------------------------------------------------------------------------------------------------


def sensor_page_context(request, sensor: Sensor) -> dict:
    """The sensor page's chart over the chosen range, its newest readings and the range's links."""
    now = timezone.now()
    [state] = fleet_status(sensors=Sensor.objects.filter(pk=sensor.pk), now=now)
    chosen = chart_range(request.GET, last_time=state["time"], now=now, interval=sensor_interval(sensor))
    chart = sensor_chart(sensor=sensor, start=chosen.start, end=chosen.end)
    latest, _ = readings_page(sensor=sensor, size=LATEST_ROWS)
    return {
        "sensor_page": {
            "state": state,
            "connectivity_label": dict(CONNECTIVITY)[state["connectivity"]],
            "range": chosen,
            "ranges": [(key, label) for key, (label, _) in RANGES.items()],
            "custom_range": CUSTOM_RANGE,
            "bucket": bucket_name(timedelta(seconds=chart["bucket_seconds"])),
            "points": chart["points"],
            "buckets": len(chart["x"]),
            "latest": latest,
            "range_query": chosen.query(),
            "events": sensor_events(sensor=sensor),
            "live_every": LIVE_EVERY_SECONDS,
        },
        "sensor_chart": _chart_payload(sensor, chart, chosen),
    }


def _chart_payload(sensor: Sensor, chart: dict, chosen: ChartRange) -> dict:
    """What the browser's chart (static/js/admin/sensor_chart.js) reads for one sensor."""
    return {
        **chart,
        "sensor_id": sensor.sensor_id,
        "unit": sensor.unit,
        "interval_seconds": sensor.sampling_interval,
        "normal_min": sensor.normal_min,
        "normal_max": sensor.normal_max,
        "timezone": timezone.get_current_timezone_name(),
        "start": int(chosen.start.timestamp()),
        "end": int(chosen.end.timestamp()),
    }


# --- Asset page -------------------------------------------------------------------------------------------------


def asset_page_context(request, asset: Asset, *, sensor_url) -> dict:
    """The asset page's signals: every sensor of the asset charted over one range, stacked on one time axis, and
    the asset's place in its site. ``sensor_url(pk)`` is the sensor page's address."""
    now = timezone.now()
    sensors = list(asset.sensors.select_related("asset").order_by("sensor_type", "sensor_id"))
    site = plant_tree(sensors=Sensor.objects.filter(asset__site=asset.site), now=now)
    # The asset's own sensors' states are in its site's tree (one fleet status read for both).
    states = {
        state["sensor_id"]: state
        for tree in site
        for entry in tree["assets"]
        if entry["pk"] == asset.pk
        for state in entry["sensors"]
    }
    times = [state["time"] for state in states.values() if state["time"] is not None]
    chosen = chart_range(request.GET, last_time=max(times, default=None), now=now)
    charts = [
        {
            **_chart_payload(sensor, chart, chosen),
            "name": sensor.name,
            "url": sensor_url(sensor.pk),
            "bucket": bucket_name(timedelta(seconds=chart["bucket_seconds"])),
        }
        for sensor, chart in zip(
            sensors, sensor_charts(sensors=sensors, start=chosen.start, end=chosen.end), strict=True
        )
    ]
    return {
        "asset_page": {
            "range": chosen,
            "ranges": [(key, label) for key, (label, _) in RANGES.items()],
            "custom_range": CUSTOM_RANGE,
            "sensors": [
                {"sensor": sensor, "state": states[sensor.sensor_id], "chart": chart}
                for sensor, chart in zip(sensors, charts, strict=True)
            ],
            "site": site[0] if site else None,
        },
        "asset_charts": charts,
    }


# --- Plant ------------------------------------------------------------------------------------------------------


def plant_view(request, admin_site):
    """Sites, their assets and their sensors, as a tree to move around a plant: each level links to its page."""
    if not request.user.has_perm("sensors.view_sensor"):
        raise PermissionDenied
    tree = plant_tree(sensors=within_user_sites(Sensor.objects.all(), request.user, site="asset__site"))
    context = {
        **admin_site.each_context(request),
        "title": "Plant: sites, assets and sensors",
        "tree": tree,
        "open_site": request.GET.get("site") or (tree[0]["site"] if len(tree) == 1 else ""),
    }
    return TemplateResponse(request, "admin/sensors/plant.html", context)


# --- Readings browser -------------------------------------------------------------------------------------------


_SPACE_FOR_PLUS = re.compile(r"^(\S+[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")


def _iso(value: str) -> str:
    """``value`` with the "+" of its offset put back where a query string turned it into a space."""
    return _SPACE_FOR_PLUS.sub(r"\1+\2", value.strip())


class LocalDateTimeInput(forms.DateTimeInput):
    """A datetime-local input that shows any ISO 8601 value in the current time zone, to the second.

    The browser's input accepts only ``YYYY-MM-DDTHH:MM[:SS]``: a value with an offset (``...T06:00:00+00:00``, as
    "Browse the readings of this range" hands it over) would come up empty, and the next "Show readings" would
    drop the range.
    """

    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs={"step": "1", **(attrs or {})}, format="%Y-%m-%dT%H:%M:%S")

    def format_value(self, value):
        if isinstance(value, str):
            parsed = parse_datetime(_iso(value)) if value.strip() else None
            if parsed is None:
                return value
            value = parsed
        if isinstance(value, datetime) and timezone.is_aware(value):
            value = timezone.localtime(value)
        return super().format_value(value)


class LocalDateTimeField(forms.DateTimeField):
    widget = LocalDateTimeInput

    def to_python(self, value):
        return super().to_python(_iso(value) if isinstance(value, str) else value)


class ReadingsBrowserForm(forms.Form):
    """Which sensor and time range to browse; pages are chosen by the before/after keys, not by this form.

    The sensor is its number (what the autocomplete sends) or its external ID (``?sensor=sensor-001``).
    """

    size = forms.TypedChoiceField(
        choices=[(size, size) for size in PAGE_SIZES], coerce=int, required=False, empty_value=100, label="per page"
    )

    def __init__(self, *args, admin_site, user, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the sensors of the person's sites: another site's sensor is "no such sensor", as one that is not.
        sensors = within_user_sites(Sensor.objects.select_related("asset"), user, site="asset__site")
        # The admin's own autocomplete (searching SensorAdmin.search_fields), so a fleet of thousands of sensors
        # never lands in one <select>.
        self.fields["sensor"] = forms.ModelChoiceField(
            queryset=sensors,
            required=False,
            widget=AutocompleteSelect(Reading._meta.get_field("sensor"), admin_site),
        )
        for name, label in (("from", "from"), ("to", "to (exclusive)")):
            self.fields[name] = LocalDateTimeField(required=False, label=label)
        self.order_fields(["sensor", "from", "to", "size"])
        # The autocomplete widget looks its value up by primary key: an external ID (or anything not a number)
        # is resolved here, or kept aside to be reported, never handed to the widget (which would fail).
        self.unknown_sensor = ""
        raw = str(self.data.get("sensor", "")).strip() if self.is_bound else ""
        if raw and not (raw.isdigit() and len(raw) <= 18):
            data = self.data.copy()
            pk = sensors.filter(sensor_id=raw).values_list("pk", flat=True).first()
            data["sensor"] = "" if pk is None else str(pk)
            self.data = data
            self.unknown_sensor = raw if pk is None else ""

    def clean_sensor(self):
        if self.unknown_sensor:
            raise ValidationError(f"No sensor has the ID or number {self.unknown_sensor!r}.", code="invalid_choice")
        return self.cleaned_data["sensor"]

    def clean(self):
        data = super().clean()
        if data.get("from") and data.get("to") and data["from"] >= data["to"]:
            raise ValidationError("The range must start before it ends.")
        return data


def _keyset(value: str | None) -> datetime | None:
    moment = parse_datetime(value) if value else None
    return moment if moment is not None and moment.tzinfo is not None else None


def readings_browser_view(request, admin_site):
    """One sensor's readings in a time range, newest first, in keyset pages: no COUNT(*) and no OFFSET, so every
    page costs the same however deep into the hypertable it is."""
    if not request.user.has_perm("readings.view_reading"):
        raise PermissionDenied
    form = ReadingsBrowserForm(request.GET or None, admin_site=admin_site, user=request.user)
    context = {
        **admin_site.each_context(request),
        "title": "Readings",
        "form": form,
        "media": form.media,
        "opts": Reading._meta,
    }
    if form.is_bound and form.is_valid() and form.cleaned_data["sensor"]:
        sensor, data = form.cleaned_data["sensor"], form.cleaned_data
        before, after = _keyset(request.GET.get("before")), _keyset(request.GET.get("after"))
        rows, more = readings_page(
            sensor=sensor, start=data["from"], end=data["to"], before=before, after=after, size=data["size"]
        )
        # Going back (after) means newer pages exist only if ``more``; going forward they exist by definition.
        newer = (after is not None and more) or before is not None
        older = (after is None and more) or after is not None
        context.update(
            sensor=sensor,
            rows=rows,
            newest_url=_page_url(request, {}) if newer else None,
            newer_url=_page_url(request, {"after": rows[0]["time"].isoformat()}) if newer and rows else None,
            older_url=_page_url(request, {"before": rows[-1]["time"].isoformat()}) if older and rows else None,
            range_query=urlencode({key: data[key].isoformat() for key in ("from", "to") if data.get(key)}),
        )
    return TemplateResponse(request, "admin/readings/browser.html", context)


def _page_url(request, keys: dict) -> str:
    params = request.GET.copy()
    for name in ("before", "after"):
        params.pop(name, None)
    params.update(keys)
    return f"?{params.urlencode()}"


# --- Live refresh -----------------------------------------------------------------------------------------------
# The dashboard and the sensor page poll these while open (static/js/admin/live.js): the page's parts rendered
# afresh, which the script swaps in by selector, and the chart's data, which it hands to the chart (keeping its
# zoom). No page reload; nothing but the app's own server.

# How often the pages poll, in seconds (the dashboard's latest readings are cached for minutes anyway).
LIVE_EVERY_SECONDS = 30
DASHBOARD_PARTS = ["#sm-dashboard"]
SENSOR_PARTS = [".sm-signal-summary", "table.sm-latest", "#sm-sensor-alerts", "#sm-sensor-anomalies"]


def dashboard_live_view(request, admin_site):
    """The dashboard's figures and lists, as the dashboard renders them."""
    context = dashboard_context(request)
    if not context:
        raise PermissionDenied
    html = render_to_string("admin/fleet_dashboard_body.html", {**admin_site.each_context(request), **context}, request)
    return JsonResponse(
        {"generated_at": context["dashboard"]["generated_at"], "replace": DASHBOARD_PARTS, "html": html}
    )


def sensor_live_view(request, admin_site, pk: int):
    """The sensor page's signal summary, latest readings, open alerts and anomalies, and its chart's data over
    the range of the page's own query (``range`` or ``from``/``to``)."""
    if not (request.user.has_perm("sensors.view_sensor") and request.user.has_perm("readings.view_reading")):
        raise PermissionDenied
    sensors = within_user_sites(Sensor.objects.select_related("asset"), request.user, site="asset__site")
    sensor = sensors.filter(pk=pk).first()
    if sensor is None:
        raise Http404("No such sensor.")
    context = sensor_page_context(request, sensor)
    parts = {**admin_site.each_context(request), **context, "original": sensor}
    html = "".join(
        render_to_string(name, parts, request)
        for name in ("admin/sensors/sensor/signal.html", "admin/sensors/sensor/events.html")
    )
    return JsonResponse(
        {"generated_at": timezone.now(), "replace": SENSOR_PARTS, "html": html, "chart": context["sensor_chart"]}
    )

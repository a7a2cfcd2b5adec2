"""Time-bucketed aggregates of one sensor's readings: one entry point, the same numbers on every database backend.

``readings_buckets`` picks the SQL by backend (see ``bucket_strategy``); filling empty buckets happens in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import NotSupportedError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from readings.models import Reading
from readings.timescale import HOURLY_VIEW, timescaledb_enabled

# Buckets start at ORIGIN + n * width, so 1d buckets start at midnight UTC on
# every backend (date_bin and time_bucket otherwise differ in their defaults).
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
BUCKETS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "10m": timedelta(minutes=10),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "3h": timedelta(hours=3),
    "6h": timedelta(hours=6),
    "12h": timedelta(hours=12),
    "1d": timedelta(days=1),
}
AGGREGATES = ("avg", "min", "max", "count", "first", "last")
FILLS = (None, "null", "previous")
STRATEGIES = ("hourly_view", "time_bucket", "date_bin", "portable")
HOURLY_AGGREGATES = frozenset({"avg", "min", "max", "count"})

_HOUR = timedelta(hours=1)
_SECOND = timedelta(seconds=1)
_ZERO = timedelta(0)
_INSTANT = timedelta(microseconds=1)

# Columns of the hourly continuous aggregate, re-aggregated into wider buckets.
# Its avg is weighted back by the count so the result is the mean of the raw rows.
_HOURLY_COLUMNS = {
    "avg": "sum(avg_value * reading_count) / sum(reading_count)",
    "min": "min(min_value)",
    "max": "max(max_value)",
    "count": "sum(reading_count)::bigint",
}


# Buckets one request may span (the API's aggregates endpoint; documented in its schema).
MAX_BUCKETS = 10_000


class TooManyBuckets(ValueError):
    """The request spans more buckets than the caller allows."""

    def __init__(self, *, buckets: int, bucket: timedelta, span: timedelta, max_buckets: int):
        self.buckets = buckets
        self.max_buckets = max_buckets
        wider = next((name for name, width in BUCKETS.items() if width > bucket and span <= width * max_buckets), None)
        advice = f"use bucket={wider} instead" if wider else "shorten the range"
        super().__init__(
            f"{buckets:,} buckets of {bucket_name(bucket)} requested, more than the limit of {max_buckets:,}; {advice}."
        )


def bucket_name(bucket: timedelta) -> str:
    """The BUCKETS key of ``bucket``, else its timedelta text."""
    return next((name for name, width in BUCKETS.items() if width == bucket), str(bucket))


def bucket_floor(moment: datetime, bucket: timedelta) -> datetime:
    """Start of the bucket containing ``moment`` (exact: timedelta arithmetic is in integer microseconds)."""
    return ORIGIN + (moment - ORIGIN) // bucket * bucket


def bucket_strategy(
    *, start: datetime, end: datetime, bucket: timedelta, aggs: Sequence[str], using: str = "default"
) -> str:
    """Which SQL answers this request on ``using``: one of STRATEGIES."""
    connection = connections[using]
    if connection.vendor == "sqlite":
        return "portable"
    if connection.vendor != "postgresql":
        raise NotSupportedError(f"Time-bucketed aggregates are not implemented for {connection.vendor}.")
    if not timescaledb_enabled(connection):
        return "date_bin"
    # Whole hourly rows then map into exactly one output bucket each, and the
    # range covers whole hours, so re-aggregating them loses nothing.
    on_hours = bucket % _HOUR == _ZERO and (start - ORIGIN) % _HOUR == _ZERO and (end - ORIGIN) % _HOUR == _ZERO
    # The view is real-time, but an hour it has already materialised shows a
    # late reading only once the refresh policy re-materialises that hour.
    if on_hours and set(aggs) <= HOURLY_AGGREGATES:
        return "hourly_view"
    return "time_bucket"


def readings_buckets(
    *,
    sensor_pk: int,
    start: datetime,
    end: datetime,
    bucket: timedelta,
    aggs: Sequence[str],
    fill: str | None = None,
    using: str = "default",
    max_buckets: int = MAX_BUCKETS,
) -> list[dict]:
    """Aggregates of the readings of one sensor with start <= time < end, per bucket, in time order.

    Each row is ``{"bucket": <bucket start, aware UTC>, <agg>: value, ...}``. Without ``fill`` only buckets
    with readings are returned; ``"null"`` returns every bucket from the one containing ``start`` to the one
    containing the instant before ``end`` (empty: count 0, other aggregates None); ``"previous"`` gives empty
    buckets the values of the last non-empty one (count 0; None before the first).
    """
    start, end, aggs = _validated(start=start, end=end, bucket=bucket, aggs=aggs, fill=fill)
    if end <= start:
        return []
    span = end - start
    if span > bucket * max_buckets:
        raise TooManyBuckets(buckets=-(span // -bucket), bucket=bucket, span=span, max_buckets=max_buckets)
    _, sql, params = _sql(sensor_pk=sensor_pk, start=start, end=end, bucket=bucket, aggs=aggs, using=using)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    result = [_row(row, aggs) for row in rows]
    if fill is not None:
        result = _filled(result, start=start, end=end, bucket=bucket, aggs=aggs, carry=fill == "previous")
    return result


def readings_buckets_sql(
    *, sensor_pk: int, start: datetime, end: datetime, bucket: timedelta, aggs: Sequence[str], using: str = "default"
) -> tuple[str, str, list]:
    """The strategy, SQL and parameters ``readings_buckets`` runs (before filling); one row per non-empty bucket.

    Each row is (bucket start in Unix seconds, *aggs).
    """
    start, end, aggs = _validated(start=start, end=end, bucket=bucket, aggs=aggs, fill=None)
    return _sql(sensor_pk=sensor_pk, start=start, end=end, bucket=bucket, aggs=aggs, using=using)


def _sql(*, sensor_pk, start, end, bucket, aggs, using) -> tuple[str, str, list]:
    connection = connections[using]
    strategy = bucket_strategy(start=start, end=end, bucket=bucket, aggs=aggs, using=using)
    n = _Names(connection)
    range_params = _range_params(connection, sensor_pk, start, end)
    if strategy == "hourly_view":
        source = (
            "SELECT time_bucket(%s::interval, bucket, %s::timestamptz) AS b, avg_value, min_value, max_value, "
            f"reading_count FROM {connection.ops.quote_name(HOURLY_VIEW)} "
            "WHERE sensor_id = %s AND bucket >= %s AND bucket < %s"
        )
        return strategy, _grouped_sql(source, _HOURLY_COLUMNS, aggs), [bucket, ORIGIN, *range_params]

    columns = {
        "avg": f"avg({n.value})",
        "min": f"min({n.value})",
        "max": f"max({n.value})",
        "count": "count(*)",
        "first": f"first({n.value}, {n.time})",
        "last": f"last({n.value}, {n.time})",
    }
    if strategy == "portable":
        # Unix seconds of the stored text 'YYYY-MM-DD HH:MM:SS[.ffffff]': the
        # first 19 characters are the time floored to the second, exact where
        # julianday() and a fractional strftime('%s') round to milliseconds.
        # Buckets are whole seconds, so the floored second falls in the same
        # bucket as the instant. Counting from the (aligned) bucket of `start`
        # keeps every offset >= 0, so integer division is a floor.
        seconds = f"CAST(strftime('%%s', substr({n.time}, 1, 19)) AS INTEGER)"
        first, width = int(bucket_floor(start, bucket).timestamp()), int(bucket.total_seconds())
        bucket_sql, params = f"(%s + ({seconds} - %s) / %s * %s)", [first, first, width, width]
    else:
        function = "time_bucket" if strategy == "time_bucket" else "date_bin"
        bucket_sql, params = f"{function}(%s::interval, {n.time}, %s::timestamptz)", [bucket, ORIGIN]
    source = f"SELECT {bucket_sql} AS b, {n.time}, {n.value} FROM {n.table} WHERE {n.where()}"
    if strategy != "time_bucket" and {"first", "last"} & set(aggs):
        # Without TimescaleDB's first()/last(): a window over each bucket in
        # time order; its value is constant within the bucket, so any aggregate
        # of it returns it.
        source = (
            f"SELECT b, {n.value}, first_value({n.value}) OVER w AS first_v, last_value({n.value}) OVER w AS last_v "
            f"FROM ({source}) AS ranged WINDOW w AS "
            f"(PARTITION BY b ORDER BY {n.time} ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
        )
        columns.update(first="min(first_v)", last="min(last_v)")
    return strategy, _grouped_sql(source, columns, aggs, epoch=strategy != "portable"), [*params, *range_params]


def _grouped_sql(source: str, columns: dict[str, str], aggs: Sequence[str], *, epoch: bool = True) -> str:
    """One row per bucket ``b`` of ``source``: its start in Unix seconds, then the aggregates."""
    # Bucket starts leave as integers: exact (buckets are whole seconds), one
    # conversion for every backend, and cheaper to load than timestamptz,
    # which Django's psycopg loader passes through Python for each value.
    start = "extract(epoch FROM b)::bigint" if epoch else "b"
    selected = ", ".join(columns[agg] for agg in aggs)
    return f"SELECT {start}, {selected} FROM ({source}) AS r GROUP BY b ORDER BY b"


def _validated(
    *, start: datetime, end: datetime, bucket: timedelta, aggs: Sequence[str], fill: str | None
) -> tuple[datetime, datetime, tuple[str, ...]]:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be aware datetimes.")
    # Whole seconds keep the portable (SQLite) arithmetic exact on integer seconds.
    if bucket <= _ZERO or bucket % _SECOND != _ZERO:
        raise ValueError(f"bucket must be a positive whole number of seconds, not {bucket}.")
    if isinstance(aggs, str):
        aggs = aggs.split(",")
    aggs = tuple(dict.fromkeys(agg.strip() for agg in aggs))
    unknown = [agg for agg in aggs if agg not in AGGREGATES]
    if unknown or not aggs:
        raise ValueError(f"aggs must be one or more of {', '.join(AGGREGATES)}; got {', '.join(unknown) or 'none'}.")
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, not {fill!r}.")
    # Nothing older is shown (see readings.selectors.readings_shown); this also keeps the conversion to UTC
    # clear of year 1, where an offset would leave datetime's range.
    start = max(start, settings.READINGS_MIN_TIME)
    end = max(end, start)
    return start.astimezone(UTC), end.astimezone(UTC), aggs


class _Names:
    """Quoted names of the readings table and its columns, from the model."""

    def __init__(self, connection: BaseDatabaseWrapper):
        quote, meta = connection.ops.quote_name, Reading._meta
        self.table = quote(meta.db_table)
        self.sensor = quote(meta.get_field("sensor").column)
        self.time = quote(meta.get_field("time").column)
        self.value = quote(meta.get_field("value").column)

    def where(self) -> str:
        return f"{self.sensor} = %s AND {self.time} >= %s AND {self.time} < %s"


def _range_params(connection: BaseDatabaseWrapper, sensor_pk: int, start: datetime, end: datetime) -> list:
    # SQLite compares the stored text, so the bounds must be in Django's own text form.
    adapt = connection.ops.adapt_datetimefield_value
    return [sensor_pk, adapt(start), adapt(end)]


def _row(row: tuple, aggs: tuple[str, ...]) -> dict:
    return {"bucket": datetime.fromtimestamp(row[0], UTC), **dict(zip(aggs, row[1:], strict=True))}


def _filled(
    rows: list[dict], *, start: datetime, end: datetime, bucket: timedelta, aggs: tuple[str, ...], carry: bool
) -> list[dict]:
    by_bucket = {row["bucket"]: row for row in rows}
    empty = {agg: 0 if agg == "count" else None for agg in aggs}
    current, last = bucket_floor(start, bucket), bucket_floor(end - _INSTANT, bucket)
    result = []
    while current <= last:
        row = by_bucket.get(current)
        if row is None:
            row = {"bucket": current, **empty}
        elif carry:
            empty = {agg: 0 if agg == "count" else row[agg] for agg in aggs}
        result.append(row)
        current += bucket
    return result

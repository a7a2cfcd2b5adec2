"""Readings as streamed CSV: one code path for the API's ``?format=csv`` and the admin console's exports."""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import StreamingHttpResponse

CSV_HEADER = ["sensor_id", "time", "value", "quality"]
# Rows fetched per round trip: memory stays flat whatever the range.
CSV_CHUNK = 5_000
# Seconds a client refused for want of a free export slot is told to wait (Retry-After).
EXPORTS_BUSY_RETRY_AFTER = 30


class ExportsBusy(Exception):
    """Every export slot of this process is taken (EXPORT_MAX_STREAMS): answer 503 with Retry-After."""

    retry_after = EXPORTS_BUSY_RETRY_AFTER


class _StreamSlots:
    """Counts the exports this process is streaming. A stream to a slow client holds a server thread for as
    long as the client takes; capping them per process below GUNICORN_THREADS keeps threads free for health
    probes and API calls, whichever worker process the kernel hands a connection to.

    A stream counts from its first row to its end (last row, client gone, or error), so a response that is
    never sent holds nothing. The check before the response and the count when it starts are not one step:
    threads starting at the same instant may pass the limit by a few, which is harmless."""

    def __init__(self):
        self._lock = threading.Lock()
        self.streaming = 0

    def full(self, limit: int) -> bool:
        return bool(limit) and self.streaming >= limit

    def counted(self, lines: Iterator[str]) -> Iterator[str]:
        with self._lock:
            self.streaming += 1
        try:
            yield from lines
        finally:
            with self._lock:
                self.streaming -= 1


_slots = _StreamSlots()


class _Echo:
    """A file-like object whose write() hands the line back, so csv.writer can feed a streamed response."""

    def write(self, value):
        return value


def readings_csv_lines(parts: Iterable[tuple[str, QuerySet]]) -> Iterator[str]:
    """The header, then the readings of each (sensor_id, readings) part, in the readings' own order."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    # In a transaction, the server-side cursor behind iterator() fetches CSV_CHUNK rows at a time. Outside one
    # (autocommit) Django declares it WITH HOLD, and PostgreSQL then runs the whole query inside the DECLARE:
    # a ten-year export would be one statement, cut off by DATABASE_STATEMENT_TIMEOUT. Read-only, so nothing is
    # held but a snapshot; a client that goes away closes the generator and so ends the transaction.
    with transaction.atomic():
        for sensor_id, readings in parts:
            rows = readings.values_list("time", "value", "quality").iterator(chunk_size=CSV_CHUNK)
            for time, value, quality in rows:
                yield writer.writerow([sensor_id, time.isoformat(), repr(value), repr(quality)])


def readings_csv_response(*, parts: Iterable[tuple[str, QuerySet]], filename: str) -> StreamingHttpResponse:
    """A streamed CSV download of ``parts`` (see ``readings_csv_lines``): rows leave as they are read, so a long
    range neither fills memory nor waits for the last row before the first byte.

    Raises ExportsBusy when this process already streams EXPORT_MAX_STREAMS exports. No Content-Length: on
    HTTP/1.1 the body is chunked, so a stream cut short (see smartmaint.streaming) is an incomplete body to
    the client, never a shorter file that looks whole."""
    if _slots.full(settings.EXPORT_MAX_STREAMS):
        raise ExportsBusy
    response = StreamingHttpResponse(_slots.counted(readings_csv_lines(parts)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response

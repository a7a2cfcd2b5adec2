"""The hypertable's time column."""

from django.conf import settings
from timescale.db.models.fields import TimescaleDateTimeField


class ReadingTimeField(TimescaleDateTimeField):
    """django-timescaledb's time field with its chunk interval taken from settings.

    The interval is an operator's choice (``READINGS_CHUNK_INTERVAL``), not part
    of the schema, so it is left out of migrations: they stay the same on every
    deployment and ``makemigrations --check`` stays clean.
    """

    def __init__(self, *args, interval=None, **kwargs):
        super().__init__(*args, interval=interval, **kwargs)

    @property
    def interval(self) -> str:
        return self._interval or settings.READINGS_CHUNK_INTERVAL

    @interval.setter
    def interval(self, value) -> None:
        self._interval = value

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self._interval is None:
            kwargs.pop("interval", None)
        return name, path, args, kwargs

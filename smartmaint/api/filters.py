"""Filter fields shared by every app's filtersets: inputs made safe before they reach the database."""

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

# PostgreSQL's bigint: a larger primary key in a filter would be a database error, not an empty answer.
MAX_BIGINT = 2**63 - 1


class UTCIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time converted to UTC.

    Python accepts UTC offsets up to 24 hours, PostgreSQL only up to about 16:
    a time like 2026-01-01T00:00+20:33 must become a plain UTC instant before
    it reaches the database, or a filter value would cause a server error.
    """

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:
            raise forms.ValidationError("This date-time is out of range.", code="overflow") from exc


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeField


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_BIGINT})
class PrimaryKeyFilter(django_filters.NumberFilter):
    """A primary key: a whole number from 1 to the largest bigint (NumberFilter takes decimals: 1.5 would be 1)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_BIGINT)
        super().__init__(*args, **kwargs)

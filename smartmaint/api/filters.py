"""Filter fields shared by every app's filtersets: inputs made safe before they reach the database."""

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.filters import OrderingFilter

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


class StrictFilterForm(forms.Form):
    """Refuses what django-filter would silently ignore or guess at: a typed filter given blank (`to=`, `asset=`)
    and a single-valued filter given twice (`asset=1&asset=2`, of which only the last would count).

    A blank free-text filter (`q=`, `site=`) still means "no filter": an empty string is a valid string, and
    HTML forms send one for every field left empty.
    """

    def clean(self):
        cleaned = super().clean()
        for name, field in self.fields.items():
            if not hasattr(self.data, "getlist") or name not in self.data:
                continue
            values = self.data.getlist(name)
            code = "invalid"  # listed for every filter in the schema (smartmaint.api.schema.AutoSchema)
            if not isinstance(field, forms.MultipleChoiceField) and len(values) > 1:
                self.add_error(name, forms.ValidationError("Give this parameter once.", code=code))
            elif type(field) is not forms.CharField and "" in values:
                self.add_error(
                    name, forms.ValidationError("Must not be empty: leave the parameter out instead.", code=code)
                )
        return cleaned


class StrictFilterSet(django_filters.FilterSet):
    """The base of every filterset: see StrictFilterForm."""

    def get_form_class(self):
        form_class = super().get_form_class()
        return type(form_class.__name__, (StrictFilterForm, form_class), {})


class StrictOrderingFilter(OrderingFilter):
    """`ordering`: comma-separated fields from the view's `ordering_fields`, each optionally with `-`.

    DRF drops unknown fields silently and falls back to the default order, so a client asking for an order it
    cannot get would page through another one without knowing. Here an unknown field, a blank value or a
    repeated parameter is a 400, and the schema lists the accepted fields.
    """

    def get_ordering(self, request, queryset, view):
        values = request.query_params.getlist(self.ordering_param)
        if not values:
            return self.get_default_ordering(view)
        valid = {name for name, _label in self.get_valid_fields(queryset, view, {"request": request})}
        terms = values[0].split(",")
        if len(values) > 1 or any(term.removeprefix("-") not in valid for term in terms):
            choices = ", ".join(sorted(valid))
            raise serializers.ValidationError(
                {self.ordering_param: [f"Comma-separated, once, from: {choices} (each optionally with -)."]}
            )
        return terms

    def get_schema_operation_parameters(self, view):
        fields = [field if isinstance(field, str) else field[0] for field in getattr(view, "ordering_fields", [])]
        default = getattr(view, "ordering", None) or []
        default = [default] if isinstance(default, str) else list(default)
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": f"Fields to order by, comma-separated, `-` for descending. Default: "
                f"{','.join(default) or 'none'}.",
                "schema": {
                    "type": "array",
                    "items": {"type": "string", "enum": [term for field in fields for term in (field, f"-{field}")]},
                    "minItems": 1,
                },
                "style": "form",
                "explode": False,
            }
        ]

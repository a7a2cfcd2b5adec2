"""The OpenAPI schema generator: drf-standardized-errors' error shapes, and strings as strict as the server."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_standardized_errors.openapi import AutoSchema as StandardizedErrorsAutoSchema
from rest_framework import serializers

from smartmaint.api.filters import StrictOrderingFilter


class AutoSchema(StandardizedErrorsAutoSchema):
    """Views may set ``error_descriptions = {400: "..."}``: the generated error response keeps its shape and
    gets that description (what makes the request invalid beyond its parameters' own schemas)."""

    def _get_response_for_code(self, serializer, status_code, *args, **kwargs):
        response = super()._get_response_for_code(serializer, status_code, *args, **kwargs)
        if int(status_code) >= 400 and isinstance(response, dict) and "application/json" in response.get("content", {}):
            # Errors are always rendered as JSON (a CSV endpoint's too: see SensorReadingsView.handle_exception).
            response["content"] = {"application/json": response["content"]["application/json"]}
        description = getattr(self.view, "error_descriptions", {}).get(int(status_code))
        if description and isinstance(response, dict):
            response["description"] = description
        return response

    def _get_parameters(self):
        parameters = super()._get_parameters()
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if (
                parameter.get("in") == "query"
                and schema.get("type") == "string"
                and not {"enum", "format", "pattern"} & set(schema)
            ):
                # Django's form fields (the filters') refuse NUL characters in any string: a 400, said here.
                schema["pattern"] = r"^[^\x00]*$"
        return parameters

    def _query_checked_outside_filters(self) -> set[str]:
        """Query parameters a list checks besides its filterset's (pagination, ordering), each answering a 400
        with code "invalid" when wrong: their errors belong in the 400 response's schema too."""
        if self.method != "GET" or not self._is_list_view():
            return set()
        names = set()
        paginator = self._get_paginator()
        if paginator is not None:
            names.update(parameter["name"] for parameter in paginator.get_schema_operation_parameters(self.view))
        for backend in self.get_filter_backends():
            if isinstance(backend, type) and issubclass(backend, StrictOrderingFilter):
                names.add(backend.ordering_param)
        return names

    def _should_add_validation_error_response(self):
        return super()._should_add_validation_error_response() or bool(self._query_checked_outside_filters())

    def _get_validation_error_codes_by_field(self, data_fields):
        codes = super()._get_validation_error_codes_by_field(data_fields)
        if self.method == "GET":
            # A filter given blank or twice (smartmaint.api.filters.StrictFilterForm).
            for field in data_fields:
                codes[field.name].add("invalid")
        for name in self._query_checked_outside_filters():
            codes[name].add("invalid")
        return codes

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions=bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and isinstance(schema, dict)
            and schema.get("type") == "string"
            and "pattern" not in schema
            and "enum" not in schema
            # A RegexValidator's own pattern (drf-spectacular adds it) says more, NUL and blanks included.
            and not any(isinstance(validator, RegexValidator) for validator in field.validators)
        ):
            # DRF refuses NUL characters in every CharField, and strips the value before its blank check, so
            # "   " is blank: the pattern says both (COMPONENT_SPLIT_REQUEST adds minLength 1 for non-blank).
            if not field.allow_blank and field.trim_whitespace:
                schema["pattern"] = r"^[^\x00]*[^\s\x00][^\x00]*$"
            else:
                schema["pattern"] = r"^[^\x00]*$"
        return schema

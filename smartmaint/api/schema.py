"""The OpenAPI schema generator: drf-standardized-errors' error shapes, and strings as strict as the server."""

from __future__ import annotations

from drf_standardized_errors.openapi import AutoSchema as StandardizedErrorsAutoSchema
from rest_framework import serializers


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

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions=bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and isinstance(schema, dict)
            and schema.get("type") == "string"
            and "pattern" not in schema
            and "enum" not in schema
        ):
            # DRF refuses NUL characters in every CharField, and strips the value before its blank check, so
            # "   " is blank: the pattern says both (COMPONENT_SPLIT_REQUEST adds minLength 1 for non-blank).
            if not field.allow_blank and field.trim_whitespace:
                schema["pattern"] = r"^[^\x00]*[^\s\x00][^\x00]*$"
            else:
                schema["pattern"] = r"^[^\x00]*$"
        return schema

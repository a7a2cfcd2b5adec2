"""drf-spectacular: describe API key authentication in the schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "sensors.api.authentication.APIKeyAuthentication"
    name = "APIKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`. Keys are created in the admin (shown once), scoped to ingest "
            "and/or read, optionally limited to a site or assets.",
        }

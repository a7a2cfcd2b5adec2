from rest_framework.renderers import BaseRenderer


class CSVRenderer(BaseRenderer):
    """Announces text/csv for content negotiation; the view streams the body itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Reached only for non-streamed responses such as errors.
        if isinstance(data, dict) and "errors" in data:
            return "\n".join(f"{error.get('attr') or ''}: {error.get('detail')}" for error in data["errors"]).encode()
        return b""

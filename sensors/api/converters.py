"""URL converter for sensor IDs: a path segment that cannot be a sensor ID (a NUL byte, say) matches no URL and
answers 404 before it reaches a query."""

from django.urls import register_converter

from sensors.models import EXTERNAL_ID_PATTERN


class SensorIDConverter:
    regex = EXTERNAL_ID_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(SensorIDConverter, "sensor_id")

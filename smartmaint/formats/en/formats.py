"""ISO dates and 24-hour times for English, in place of Django's "Jan. 31, 2026, 2:05 p.m.": the console's
templates, charts (static/js/admin/sensor_chart.js) and exports all read 2026-01-31 14:05. Formats not set here
fall back to Django's own English ones; input formats are untouched."""

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"

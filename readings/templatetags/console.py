"""Template filters of the admin console: figures with thousands separators (1,234,567), whatever the locale
settings (USE_THOUSAND_SEPARATOR would also group the ids in links)."""

from django import template

register = template.Library()


@register.filter
def thousands(value):
    """An integer with comma thousands separators; anything else as it is."""
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    return f"{value:,}"

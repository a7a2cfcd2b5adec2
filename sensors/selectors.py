"""Reads of the fleet, restricted to what the caller may see."""

from __future__ import annotations

from django.db.models import QuerySet

from sensors.models import APIKey, Asset, Sensor


def assets_visible(*, key: APIKey | None) -> QuerySet[Asset]:
    """Every asset for users; for an API key, only its site and/or its assets."""
    assets = Asset.objects.all()
    if key is not None:
        if key.site:
            assets = assets.filter(site=key.site)
        asset_ids = list(key.assets.values_list("pk", flat=True))
        if asset_ids:
            assets = assets.filter(pk__in=asset_ids)
    return assets


def sensors_visible(*, key: APIKey | None) -> QuerySet[Sensor]:
    sensors = Sensor.objects.select_related("asset")
    if key is not None:
        if key.site:
            sensors = sensors.filter(asset__site=key.site)
        asset_ids = list(key.assets.values_list("pk", flat=True))
        if asset_ids:
            sensors = sensors.filter(asset_id__in=asset_ids)
    return sensors

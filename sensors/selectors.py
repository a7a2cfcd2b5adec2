"""Reads of the fleet, restricted to what the caller may see."""

from __future__ import annotations

from django.db.models import QuerySet

from sensors.models import APIKey, Asset, Sensor


def _within_key_limit(queryset: QuerySet, key: APIKey | None, *, site: str, asset: str) -> QuerySet:
    """Apply an API key's limits (its site, its assets; both when both are set); users have none."""
    if key is None:
        return queryset
    if key.site:
        queryset = queryset.filter(**{site: key.site})
    asset_ids = list(key.assets.values_list("pk", flat=True))
    if asset_ids:
        queryset = queryset.filter(**{f"{asset}__in": asset_ids})
    return queryset


def assets_visible(*, key: APIKey | None) -> QuerySet[Asset]:
    """Every asset for users; for an API key, only its site and/or its assets."""
    return _within_key_limit(Asset.objects.all(), key, site="site", asset="pk")


def sensors_visible(*, key: APIKey | None) -> QuerySet[Sensor]:
    return _within_key_limit(Sensor.objects.select_related("asset"), key, site="asset__site", asset="asset_id")

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


def user_sites(user) -> list[str] | None:
    """The site names ``user`` may see, or None for every site (superusers, ``UserSites.all_sites``)."""
    if user is None or not user.is_authenticated:
        return []
    if user.is_superuser:
        return None
    cached = getattr(user, "_sites_visible", False)
    if cached is not False:
        return cached
    from sensors.models import UserSites

    access = UserSites.objects.filter(user_id=user.pk).first()
    sites = None if access is not None and access.all_sites else list(access.sites if access else [])
    user._sites_visible = sites
    return sites


def within_user_sites(queryset: QuerySet, user, *, site: str = "site") -> QuerySet:
    """``queryset`` limited to the sites ``user`` may see; ``site``: the lookup of the row's site name."""
    sites = user_sites(user)
    return queryset if sites is None else queryset.filter(**{f"{site}__in": sites})


def assets_for_user(*, user) -> QuerySet[Asset]:
    return within_user_sites(Asset.objects.all(), user)

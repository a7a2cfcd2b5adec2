"""Reads of the fleet, restricted to what the caller may see."""

from __future__ import annotations

from collections.abc import Callable

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


def assets_visible(*, key: APIKey | None, user=None) -> QuerySet[Asset]:
    """For an API key, only its site and/or its assets; for a person (``user``), the sites they are given
    (``user_sites``)."""
    assets = _within_key_limit(Asset.objects.all(), key, site="site", asset="pk")
    return assets if key is not None or user is None else within_user_sites(assets, user)


def sensors_visible(*, key: APIKey | None, user=None) -> QuerySet[Sensor]:
    sensors = _within_key_limit(Sensor.objects.select_related("asset"), key, site="asset__site", asset="asset_id")
    return sensors if key is not None or user is None else within_user_sites(sensors, user, site="asset__site")


def user_sites(user) -> list[str] | None:
    """The site names ``user`` may see, or None for every site: the one rule for site access, used by every list,
    page and API that a person reads (work orders, the fleet, readings, anomalies).

    Superusers, and people given *all sites*, see every site; people given sites (``UserSites``) see those. People
    in a group (Maintenance manager, Technician, Viewer, ...) without sites given see none. Accounts in no group
    and without sites given (integrators' API users, which predate site access) are not limited.
    """
    if user is None or not user.is_authenticated:
        return []
    if user.is_superuser:
        return None
    cached = getattr(user, "_sites_visible", False)
    if cached is not False:
        return cached
    from django.contrib.auth import get_user_model
    from django.db.models import Exists, OuterRef

    model = get_user_model()
    in_group = Exists(model.groups.through.objects.filter(**{f"{model._meta.model_name}_id": OuterRef("pk")}))
    # One query: lists and endpoints pin their query counts.
    row = (
        model.objects.filter(pk=user.pk)
        .annotate(in_group=in_group)
        .values("site_access__pk", "site_access__all_sites", "site_access__sites", "in_group")
        .first()
    )
    if row is None:
        sites = []
    elif row["site_access__pk"] is not None:
        sites = None if row["site_access__all_sites"] else list(row["site_access__sites"] or [])
    else:
        sites = [] if row["in_group"] else None
    user._sites_visible = sites
    return sites


def within_user_sites(queryset: QuerySet, user, *, site: str = "site") -> QuerySet:
    """``queryset`` limited to the sites ``user`` may see; ``site``: the lookup of the row's site name."""
    sites = user_sites(user)
    return queryset if sites is None else queryset.filter(**{f"{site}__in": sites})


def assets_for_user(*, user) -> QuerySet[Asset]:
    return within_user_sites(Asset.objects.all(), user)


# Sections other apps add to the asset page (maintenance: its work orders, open alerts and figures), registered in
# their AppConfig.ready() so that sensors imports none of them.
_asset_section_providers: list[Callable[..., dict | None]] = []


def register_asset_section(provider: Callable[..., dict | None]) -> Callable[..., dict | None]:
    """Add a section to the asset page: ``provider(request=..., asset=...)`` returns {"template": ..., ...} (the
    template is included with the dict as ``section``), or None to show nothing to that person. Registering twice
    adds it once."""
    if provider not in _asset_section_providers:
        _asset_section_providers.append(provider)
    return provider


def asset_sections(*, request, asset: Asset) -> list[dict]:
    """Every registered source's section for ``asset``'s page, in registration order."""
    sections = (provider(request=request, asset=asset) for provider in _asset_section_providers)
    return [section for section in sections if section]

"""Writes to the fleet."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from sensors.choices import APIKeyScope, SensorStatus
from sensors.models import APIKey, Asset, Sensor


def sensor_set_status(*, sensors: QuerySet[Sensor], status: str) -> list[int]:
    """Set the status of ``sensors`` (for example to maintenance); returns the pks of those that changed.

    Sensors already in ``status`` are left alone, so their ``updated_at`` keeps saying when they last changed.
    Two queries whatever the number of sensors.
    """
    if status not in SensorStatus.values:
        raise ValueError(f"status must be one of {', '.join(SensorStatus.values)}, not {status!r}.")
    with transaction.atomic(using=sensors.db):
        changed = list(sensors.exclude(status=status).select_for_update().values_list("pk", flat=True))
        # update() bypasses auto_now, so updated_at is set here.
        Sensor.objects.using(sensors.db).filter(pk__in=changed).update(status=status, updated_at=timezone.now())
    return changed


class APIKeyInvalid(ValueError):
    """The key asked for cannot be made as given; the message says why and what to do."""


@transaction.atomic
def api_key_create(
    *,
    name: str,
    scope: str,
    site: str = "",
    asset_codes: Sequence[str] = (),
    expires: datetime | None = None,
) -> tuple[APIKey, str]:
    """Create an API key limited to ``site`` and/or the assets ``asset_codes``; returns it and its secret.

    The secret exists only in the return value (the key is stored hashed): show it once. A name already used by
    an active key is refused, since the name is how people tell gateways apart in the admin.
    """
    name = name.strip()
    if not name:
        raise APIKeyInvalid("The key needs a name, e.g. the gateway it is for.")
    if scope not in APIKeyScope.values:
        raise APIKeyInvalid(f"Unknown scope {scope!r}; use one of {', '.join(APIKeyScope.values)}.")
    if expires is not None and expires <= timezone.now():
        raise APIKeyInvalid(f"The expiry {expires.isoformat()} is already past.")
    if APIKey.objects.filter(name=name, revoked=False).exists():
        raise APIKeyInvalid(f"An active API key named {name!r} exists; revoke it in the admin or choose another name.")
    codes = list(dict.fromkeys(asset_codes))
    assets = list(Asset.objects.filter(code__in=codes))
    unknown = sorted(set(codes) - {asset.code for asset in assets})
    if unknown:
        raise APIKeyInvalid(f"Unknown asset code(s): {', '.join(unknown)}.")
    elsewhere = sorted(asset.code for asset in assets if site and asset.site != site)
    if elsewhere:
        # Both limits apply together: such an asset would be invisible to the key.
        raise APIKeyInvalid(f"Asset(s) {', '.join(elsewhere)} are not in site {site!r}.")
    key, secret = APIKey.objects.create_key(name=name, scope=scope, site=site, expiry_date=expires)
    key.assets.set(assets)
    return key, secret

"""The asset page's "Maintenance" section, registered with sensors.selectors in MaintenanceConfig.ready (sensors
imports no maintenance): the asset's work orders, its open alerts and its maintenance figures."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from maintenance.choices import ACTIVE_STATUSES, CLOSED_STATUSES
from maintenance.selectors import asset_maintenance_figures, work_orders_visible
from mlops.choices import AlertStatus
from mlops.models import Alert
from sensors.selectors import within_user_sites

ASSET_FIGURE_PERIODS = {"30": 30, "90": 90, "365": 365}  # ?period= in days
ASSET_FIGURE_PERIOD_DEFAULT = "90"
ASSET_WORK_ORDERS_SHOWN = 10


def asset_maintenance_section(*, request, asset) -> dict | None:
    """The asset's open and past work orders, its open alerts and its maintenance figures over the chosen
    period (``?period=`` 30, 90 or 365 days; 90 otherwise), for people who may see work orders. Five queries."""
    user = request.user
    if not user.has_perm("maintenance.view_workorder"):
        return None
    period = request.GET.get("period")
    if period not in ASSET_FIGURE_PERIODS:
        period = ASSET_FIGURE_PERIOD_DEFAULT
    end = timezone.now()
    start = end - timedelta(days=ASSET_FIGURE_PERIODS[period])
    work_orders = work_orders_visible(user=user).filter(asset=asset)
    shown = ASSET_WORK_ORDERS_SHOWN
    open_orders = list(work_orders.filter(status__in=ACTIVE_STATUSES)[: shown + 1])
    past_orders = list(work_orders.filter(status__in=CLOSED_STATUSES).order_by("-updated_at", "-pk")[: shown + 1])
    alerts = None
    if user.has_perm("mlops.view_alert"):
        alerts = list(
            within_user_sites(Alert.objects.filter(sensor__asset=asset), user, site="sensor__asset__site")
            .exclude(status=AlertStatus.RESOLVED)
            .select_related("sensor")
            .order_by("-opened_at")[: shown + 1]
        )
    list_url = reverse("admin:maintenance_workorder_changelist")
    return {
        "template": "admin/maintenance/asset_maintenance.html",
        "periods": [(key, f"{days} days") for key, days in ASSET_FIGURE_PERIODS.items()],
        "period": period,
        "open_orders": open_orders[:shown],
        "open_more": len(open_orders) > shown,
        "past_orders": past_orders[:shown],
        "past_more": len(past_orders) > shown,
        "alerts": None if alerts is None else alerts[:shown],
        "alerts_more": alerts is not None and len(alerts) > shown,
        "list_url": f"{list_url}?asset__id__exact={asset.pk}",
        "figures": asset_maintenance_figures(asset, start, end),
    }

"""Who may do what with work orders: people only (JWT or session), by their groups' permissions."""

from rest_framework.permissions import BasePermission

from sensors.api.permissions import request_key


class WorkOrderPermission(BasePermission):
    """Reading needs "view work order" (every maintenance group); creating needs "add work order" (managers).
    What one may change on a given work order is checked by the view against ``maintenance.selectors``."""

    message = "Work orders are for people in the maintenance groups (API keys have no access)."

    def has_permission(self, request, view) -> bool:
        if request_key(request) is not None or not (request.user and request.user.is_authenticated):
            return False
        if not request.user.has_perm("maintenance.view_workorder"):
            return False
        if getattr(view, "action", None) == "create":
            return request.user.has_perm("maintenance.add_workorder")
        return True

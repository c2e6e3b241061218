"""DRF permission classes shared by the apps' API views (instead of inline checks)."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from config.exceptions import Forbidden


class StaffOnly(BasePermission):
    """Staff only. A signed-in non-staff user gets the platform's `forbidden` error with the
    view's `staff_reason` (\"only staff can ...\"); use after `IsAuthenticated`."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user and user.is_authenticated and user.is_staff:
            return True
        if not (user and user.is_authenticated):
            return False  # DRF answers 401/403 as for any anonymous request
        raise Forbidden(getattr(view, "staff_reason", "only staff can do this"))

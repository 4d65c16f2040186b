from typing import Any

from django.http import HttpRequest

from security import permissions


def roles(request: HttpRequest) -> dict[str, Any]:
    """Expose the signed-in user's role to templates (navigation only; views check permission themselves)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"is_agent": False, "can_view_dashboards": False}
    return {"is_agent": permissions.can_use_desk(user), "can_view_dashboards": permissions.can_view_sla_dashboard(user)}

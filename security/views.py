from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from security import permissions, selectors
from security.forms import EmailAuthenticationForm


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Desk users (agents, managers, security officers) land in the desk, everyone else in the portal."""
    return redirect("desk" if permissions.can_use_desk(request.user) else "portal")  # type: ignore[arg-type]


class LoginView(auth_views.LoginView):
    """E-mail + password sign-in with failed-attempt throttling (see `security.throttle`)."""

    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    """The audit trail for administrators and security officers: newest first, filtered by action, object or actor,
    keyset-paged on the chain's sequence number. Anyone else gets the same 404 as a missing page."""
    user = request.user
    if not permissions.can_view_audit_log(user):  # type: ignore[arg-type]
        raise Http404("No such page.")
    params = request.GET
    before = params.get("before", "")
    actor = params.get("actor", "")
    filters = {
        "action": params.get("action", "").strip()[:64],
        "object_type": params.get("object_type", "").strip()[:64],
        "object_id": params.get("object_id", "").strip()[:64],
        "actor_id": int(actor) if actor.isdigit() else None,
    }
    page = selectors.audit_list(
        user=user,  # type: ignore[arg-type]
        before=int(before) if before.isdigit() else None,
        **filters,  # type: ignore[arg-type]
    )
    next_url = None
    if page.next_before is not None:
        query = params.copy()
        query["before"] = str(page.next_before)
        next_url = f"?{query.urlencode()}"
    return render(request, "security/audit_log.html", {"page": page, "filters": filters, "next_url": next_url})

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from security import permissions


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Agents land in the desk, everyone else in the portal."""
    return redirect("desk" if permissions.is_agent(request.user) else "portal")  # type: ignore[arg-type]

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from security import permissions
from security.forms import EmailAuthenticationForm


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Desk users (agents, managers, security officers) land in the desk, everyone else in the portal."""
    return redirect("desk" if permissions.can_use_desk(request.user) else "portal")  # type: ignore[arg-type]


class LoginView(auth_views.LoginView):
    """E-mail + password sign-in with failed-attempt throttling (see `security.throttle`)."""

    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

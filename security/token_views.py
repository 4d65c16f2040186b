"""The "API tokens" page: everyone signed in lists, creates and revokes their own tokens (docs/api-tokens.md).

The token string is rendered once, in the answer to the POST that created it (no redirect: it never passes through
the session, a message cookie or a URL), with `Cache-Control: no-store` so the browser does not keep the page.
"""

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from itsm.errors import DomainError, NotFound
from itsm.forms import form_add_domain_error
from security import selectors, token_services
from security.models import User
from security.token_forms import TokenCreateForm

# How long a sent create form is remembered (a reload of the answer page re-sends it).
SUBMISSION_SECONDS = 24 * 3600


def _page(
    request: HttpRequest, user: User, form: TokenCreateForm, *, created: object = None, status: int = 200
) -> HttpResponse:
    before = request.GET.get("before", "")
    page = selectors.token_list(user=user, before=int(before) if before.isdigit() else None)
    response = render(
        request,
        "security/tokens.html",
        {"page": page, "form": form, "created": created, "now": timezone.now()},
        status=status,
    )
    add_never_cache_headers(response)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)
    if request.method == "POST":
        form = TokenCreateForm(request.POST, owner=user)
        if form.is_valid():
            submission_key = f"security:token-form:{user.pk}:{form.cleaned_data['submission']}"
            if not cache.add(submission_key, 1, timeout=SUBMISSION_SECONDS):
                messages.info(request, "That form was already sent: its token was created and shown then.")
                return redirect("api_tokens")
            try:
                created = token_services.token_create(
                    actor=user,
                    owner=user,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=form.expires_at(),
                )
            except DomainError as exc:
                cache.delete(submission_key)  # nothing was created: the corrected form may be sent again
                form_add_domain_error(form, exc)
            else:
                return _page(request, user, TokenCreateForm(owner=user), created=created)
        return _page(request, user, form, status=400)
    return _page(request, user, TokenCreateForm(owner=user))


@login_required
@require_http_methods(["GET", "POST"])
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation, POST revokes. Someone else's token is the same 404 as a missing one."""
    user = cast(User, request.user)
    try:
        token = selectors.token_get(user=user, pk=pk)
    except NotFound as exc:
        raise Http404("No such token.") from exc
    if request.method == "POST":
        token_services.token_revoke(actor=user, token=token)
        messages.success(request, f"The token “{token.name}” is revoked. Requests with it are refused from now on.")
        return redirect("api_tokens")
    return render(request, "security/token_revoke.html", {"token": token})

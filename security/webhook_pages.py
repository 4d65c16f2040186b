"""Webhook pages under /security/webhooks/: list, create, edit, detail with the delivery log, redeliver, rotate the
secret, enable/disable, delete. For users who may manage webhooks (agents, leads, managers, security officers,
admins); each sees their own subscriptions, admins every one. Anyone else, and any other id, gets the same 404."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from itsm.errors import DomainError, NotFound
from itsm.forms import form_add_domain_error
from security import permissions, webhooks
from security.models import User, WebhookSubscription
from security.webhook_forms import WebhookForm


def _user(request: HttpRequest) -> User:
    user: User = request.user  # type: ignore[assignment]
    if not permissions.can_manage_webhooks(user):
        raise Http404("No such page.")
    return user


def _subscription(user: User, pk: int) -> WebhookSubscription:
    try:
        return webhooks.webhook_get(user=user, pk=pk)
    except NotFound as exc:
        raise Http404("No such webhook.") from exc


@login_required
def webhook_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    before = request.GET.get("before", "")
    page = webhooks.webhook_list(user=user, before_id=int(before) if before.isdigit() else None)
    return render(
        request,
        "security/webhooks/list.html",
        {"page": page, "event_labels": webhooks.event_types(), "show_owner": user.is_admin},
    )


def _secret_page(request: HttpRequest, created: webhooks.SubscriptionWithSecret, *, rotated: bool) -> HttpResponse:
    response = render(
        request,
        "security/webhooks/secret.html",
        {"subscription": created.subscription, "secret": created.secret, "rotated": rotated},
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def webhook_create(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = webhooks.webhook_create(actor=user, **form.cleaned_data)
        except DomainError as exc:
            form_add_domain_error(form, exc)
        else:
            return _secret_page(request, created, rotated=False)
    status = 400 if request.method == "POST" else 200
    return render(request, "security/webhooks/form.html", {"form": form, "subscription": None}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def webhook_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    subscription = _subscription(user, pk)
    if not permissions.can_edit_webhook(user, subscription.owner_id):
        raise Http404("No such page.")
    initial = {"name": subscription.name, "url": subscription.url, "event_types": subscription.event_types}
    form = WebhookForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            webhooks.webhook_update(actor=user, subscription=subscription, **form.cleaned_data)
        except DomainError as exc:
            form_add_domain_error(form, exc)
        else:
            messages.success(request, "Webhook saved.")
            return redirect("webhook_detail", pk=subscription.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "security/webhooks/form.html", {"form": form, "subscription": subscription}, status=status)


@login_required
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    subscription = _subscription(user, pk)
    page = webhooks.delivery_list(user=user, subscription=subscription, cursor=request.GET.get("cursor", ""))
    return render(
        request,
        "security/webhooks/detail.html",
        {
            "subscription": subscription,
            "page": page,
            "is_owner": permissions.can_edit_webhook(user, subscription.owner_id),
        },
    )


@login_required
@require_POST
def webhook_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    subscription = _subscription(user, pk)
    if not permissions.can_edit_webhook(user, subscription.owner_id):
        raise Http404("No such page.")
    return _secret_page(request, webhooks.webhook_rotate_secret(actor=user, subscription=subscription), rotated=True)


@login_required
@require_POST
def webhook_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    subscription = _subscription(user, pk)
    enable = request.POST.get("is_active") == "1"
    webhooks.webhook_set_active(actor=user, subscription=subscription, is_active=enable)
    messages.success(request, "Webhook enabled." if enable else "Webhook disabled.")
    return redirect("webhook_detail", pk=subscription.pk)


@login_required
@require_http_methods(["GET", "POST"])
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    subscription = _subscription(user, pk)
    if request.method == "POST":
        webhooks.webhook_delete(actor=user, subscription=subscription)
        messages.success(request, f'Webhook "{subscription.name}" deleted.')
        return redirect("webhook_list")
    return render(request, "security/webhooks/delete.html", {"subscription": subscription})


@login_required
@require_POST
def delivery_redeliver(request: HttpRequest, pk: int, delivery_id: str) -> HttpResponse:
    user = _user(request)
    subscription = _subscription(user, pk)
    try:
        delivery = webhooks.delivery_get(user=user, subscription=subscription, pk=delivery_id)
        webhooks.delivery_redeliver(actor=user, delivery=delivery)
    except NotFound as exc:
        raise Http404("No such delivery.") from exc
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Delivery queued again, with the same X-Webhook-Id.")
    return redirect("webhook_detail", pk=subscription.pk)

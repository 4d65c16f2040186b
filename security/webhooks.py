"""Webhook subscriptions: event types, secrets, the outbox subscriber, the services that change subscriptions and the
selectors that read them (the delivery worker is `security.webhook_delivery`; docs/webhooks.md for integrators).

Event types are discovered from the `DomainEvent` subclasses that exist (recursively, by their stable `name`), so an
app that adds events (SLA warnings, breaches…) gets them offered without touching this module, as long as some app
registered a *subject builder* for the event class or one of its bases. The builder turns an event into payload data
and says which ticket it is about; the outbox then sends each subscription only what its owner may see. Events with
no builder are never offered (fail closed). `security` does not import `tickets`: tickets registers its builder.
"""

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from itsm.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from itsm.events import DomainEvent
from itsm.paging import keyset_page
from itsm.queue import enqueue_on_commit
from security import permissions
from security.audit import audit_record, snapshot, to_json
from security.models import User, WebhookDelivery, WebhookSubscription
from security.webhook_ssrf import Resolver, vet_url

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - a label, not a secret
AUDIT_FIELDS = ("owner", "name", "url", "event_types", "is_active")
NAME_MAX_CHARS = 100
URL_MAX_CHARS = 500

EVENT_LABELS = {
    "ticket.created": "Ticket created",
    "ticket.state_changed": "Ticket state changed",
    "ticket.assigned": "Ticket assigned",
    "ticket.team_changed": "Ticket moved to another team",
    "ticket.priority_changed": "Ticket priority changed",
    "ticket.category_changed": "Ticket category changed",
    "ticket.commented": "Public reply added",
    "ticket.note_added": "Internal note added (only for owners who may read internal notes)",
    "sla.warning": "SLA warning",
    "sla.breached": "SLA breached",
    "sla.met": "SLA met",
}


# --- subjects: what an event is about, and who may see which part of it ---------------------------------------------


@dataclass(frozen=True)
class WebhookSubject:
    """Payload data for one event. `data` goes to every owner who may see `ticket`; `internal_data` is merged in only
    for owners who may read its internal notes; an event that is itself internal (`is_internal`, an internal note)
    goes only to them. `ticket=None` means the event is about nothing access-controlled."""

    data: dict[str, Any]
    internal_data: dict[str, Any] = field(default_factory=dict)
    ticket: permissions.TicketLike | None = None
    is_internal: bool = False


SubjectBuilder = Callable[[Any], WebhookSubject | None]
_builders: dict[type[DomainEvent], SubjectBuilder] = {}


def register_subject_builder(event_type: type[DomainEvent], builder: SubjectBuilder) -> None:
    """Events of `event_type` and its subclasses become webhook event types, with payloads from `builder`."""
    _builders[event_type] = builder


def builder_for(event_type: type[DomainEvent]) -> SubjectBuilder | None:
    for klass in event_type.__mro__:
        builder = _builders.get(klass)
        if builder is not None:
            return builder
    return None


def _subclasses(base: type[DomainEvent]) -> Iterable[type[DomainEvent]]:
    for sub in base.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def event_types() -> dict[str, str]:
    """Every subscribable event name with its label, sorted by name."""
    found: dict[str, str] = {}
    for klass in _subclasses(DomainEvent):
        if klass.name == DomainEvent.name or builder_for(klass) is None:
            continue
        found.setdefault(klass.name, EVENT_LABELS.get(klass.name, klass.name))
    return dict(sorted(found.items()))


# --- secrets ----------------------------------------------------------------------------------------------------------


def new_salt() -> str:
    return secrets.token_hex(32)


def signing_secret(subscription: WebhookSubscription) -> str:
    """The subscription's signing secret: HMAC-SHA256(WEBHOOK_SIGNING_KEY, salt). Only the salt is stored, so the
    database alone (a backup, a read replica, an SQL injection) does not give anyone the power to forge deliveries."""
    digest = hmac.new(
        settings.WEBHOOK_SIGNING_KEY.encode(), subscription.secret_salt.encode(), hashlib.sha256
    ).hexdigest()
    return f"{SECRET_PREFIX}{digest}"


# --- the outbox -----------------------------------------------------------------------------------------------------


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _event_fields(event: DomainEvent) -> dict[str, Any]:
    fields = asdict(event)
    fields.pop("at", None)
    fields.pop("actor_id", None)
    return dict(fields)


def retry_deadline(now: datetime) -> datetime:
    return now + timedelta(hours=settings.WEBHOOK_RETRY_HOURS)


SUBSCRIBED_TYPES_CACHE_KEY = "webhooks:subscribed-event-types"
SUBSCRIBED_TYPES_CACHE_SECONDS = 60


def subscribed_event_types() -> frozenset[str]:
    """The event names at least one active subscription wants, from the cache (refilled from Postgres on a miss).

    Most published events (a wave of SLA breaches, a bulk reassignment) have no subscriber at all; this lets the
    outbox skip them without a query. The services that create, change, enable, disable or delete a subscription
    drop the entry at once and again after commit. A stale entry can only be wider than the truth for a moment (a
    disabled or rolled-back subscription: the outbox query then finds nothing) or, in a race of under a second
    around a commit, narrower until the entry expires (`SUBSCRIBED_TYPES_CACHE_SECONDS`)."""
    try:
        cached = cache.get(SUBSCRIBED_TYPES_CACHE_KEY)
    except Exception:  # the cache is an optimisation: without Redis, ask Postgres
        logger.warning("webhooks.subscribed_types_cache_unavailable", exc_info=True)
        cached = None
    if cached is not None:
        return frozenset(cached)
    names: set[str] = set()
    for event_types in WebhookSubscription.objects.filter(is_active=True).values_list("event_types", flat=True):
        names.update(event_types)
    try:
        cache.set(SUBSCRIBED_TYPES_CACHE_KEY, sorted(names), timeout=SUBSCRIBED_TYPES_CACHE_SECONDS)
    except Exception:
        logger.warning("webhooks.subscribed_types_cache_unavailable", exc_info=True)
    return frozenset(names)


def _forget_subscribed_event_types() -> None:
    def forget() -> None:
        try:
            cache.delete(SUBSCRIBED_TYPES_CACHE_KEY)
        except Exception:
            logger.warning("webhooks.subscribed_types_cache_unavailable", exc_info=True)

    forget()
    transaction.on_commit(forget)


def outbox_write(event: DomainEvent) -> None:
    """`subscribe_all` subscriber: one delivery row per active subscription that wants `event` and whose owner may
    see it, in the publishing transaction (a rolled-back change leaves no row and sends nothing). The payload is
    frozen now, filtered by the owner's access now. The worker is woken after commit; if that message is lost, the
    sweeper finds the row in Postgres."""
    if event.name not in subscribed_event_types():
        return
    subscriptions = list(
        WebhookSubscription.objects.filter(is_active=True, event_types__contains=[event.name]).select_related("owner")
    )
    if not subscriptions:
        return
    builder = builder_for(type(event))
    subject = builder(event) if builder is not None else None
    if subject is None:
        return
    now = timezone.now()
    event_id = uuid.uuid4()
    fields = _event_fields(event)
    owners: dict[int, User] = {}
    for subscription in subscriptions:
        owners.setdefault(subscription.owner_id, subscription.owner)
    permissions.load_access(owners.values())  # one query for every owner's memberships
    rows: list[WebhookDelivery] = []
    for subscription in subscriptions:
        owner = owners[subscription.owner_id]
        if not permissions.can_manage_webhooks(owner):  # deactivated, or no longer works the desk
            continue
        ticket = subject.ticket
        if ticket is not None and not permissions.can_view_ticket(owner, ticket):
            continue
        reads_internal = ticket is not None and permissions.can_view_internal(owner, ticket)
        if subject.is_internal and not reads_internal:
            continue
        data = _merge({**fields, **subject.data}, subject.internal_data if reads_internal else {})
        delivery_id = uuid.uuid4()
        payload = {
            "id": str(delivery_id),
            "event": event.name,
            "event_id": str(event_id),
            "occurred_at": event.at,
            "actor_id": event.actor_id,
            "data": data,
        }
        rows.append(
            WebhookDelivery(
                id=delivery_id,
                subscription=subscription,
                event_name=event.name,
                event_id=event_id,
                payload=to_json(payload),
                next_attempt_at=now,
                retry_until=retry_deadline(now),
                created_at=now,
            )
        )
    if not rows:
        return
    WebhookDelivery.objects.bulk_create(rows)
    from security.tasks import webhook_deliver_task  # the task module imports the worker, which imports this one

    for row in rows:
        enqueue_on_commit(webhook_deliver_task, str(row.pk))
    logger.info("webhooks.outbox_written", extra={"event": event.name, "deliveries": len(rows)})


# --- services ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionWithSecret:
    """A created or rotated subscription and its secret, which is shown once and never again."""

    subscription: WebhookSubscription
    secret: str


def _require_manager(actor: User) -> None:
    if not permissions.can_manage_webhooks(actor):
        raise PermissionDenied("You cannot manage webhooks.")


def _require_manages(actor: User, subscription: WebhookSubscription) -> None:
    # Missing and forbidden look the same.
    if not permissions.can_manage_webhook(actor, subscription.owner_id):
        raise NotFound("No such webhook.")


def _require_owner(actor: User, subscription: WebhookSubscription) -> None:
    if not permissions.can_edit_webhook(actor, subscription.owner_id):
        raise PermissionDenied("Only the owner can change a webhook's URL, events or secret.", code="not_webhook_owner")


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("A name is required.", fields={"name": ["Give the webhook a name."]})
    if len(name) > NAME_MAX_CHARS:
        raise ValidationFailed("The name is too long.", fields={"name": [f"Use at most {NAME_MAX_CHARS} characters."]})
    return name


def _clean_url(url: str, resolve: Resolver | None) -> str:
    url = (url or "").strip()
    if len(url) > URL_MAX_CHARS:
        raise ValidationFailed("The URL is too long.", fields={"url": [f"Use at most {URL_MAX_CHARS} characters."]})
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError as exc:
        raise ValidationFailed("The URL is not valid.", fields={"url": ["Enter an http:// or https:// URL."]}) from exc
    if resolve is None:
        vet_url(url)
    else:
        vet_url(url, resolve=resolve)
    return url


def _clean_event_types(values: Iterable[str]) -> list[str]:
    if isinstance(values, str):
        values = [values]
    chosen = sorted({str(value) for value in values})
    known = event_types()
    unknown = [value for value in chosen if value not in known]
    if unknown:
        raise ValidationFailed(
            "Unknown event type.", fields={"event_types": [f"Unknown event type: {', '.join(unknown)}."]}
        )
    if not chosen:
        raise ValidationFailed("Choose at least one event.", fields={"event_types": ["Choose at least one event."]})
    return chosen


def _name_taken() -> ValidationFailed:
    return ValidationFailed("Name taken.", fields={"name": ["You already have a webhook with this name."]})


@transaction.atomic
def webhook_create(
    *, actor: User, name: str, url: str, event_types: Iterable[str], resolve: Resolver | None = None
) -> SubscriptionWithSecret:
    """Subscribe `url` to `event_types` for `actor`. The URL must pass the SSRF guard now (and again at each send)."""
    _require_manager(actor)
    subscription = WebhookSubscription(
        owner=actor,
        name=_clean_name(name),
        url=_clean_url(url, resolve),
        event_types=_clean_event_types(event_types),
        secret_salt=new_salt(),
    )
    try:
        with transaction.atomic():
            subscription.save(force_insert=True)
    except IntegrityError as exc:
        raise _name_taken() from exc
    _forget_subscribed_event_types()
    audit_record(actor=actor, action="webhook.create", obj=subscription, after=snapshot(subscription, AUDIT_FIELDS))
    return SubscriptionWithSecret(subscription, signing_secret(subscription))


def _lock(subscription: WebhookSubscription | int) -> WebhookSubscription:
    pk = subscription.pk if isinstance(subscription, WebhookSubscription) else subscription
    found = WebhookSubscription.objects.select_for_update().filter(pk=pk).first()
    if found is None:
        raise NotFound("No such webhook.")
    return found


@transaction.atomic
def webhook_update(
    *,
    actor: User,
    subscription: WebhookSubscription | int,
    name: str | None = None,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    resolve: Resolver | None = None,
) -> WebhookSubscription:
    """Change the name, URL or events. Locks the row; a no-op (and no audit row) when nothing changes."""
    subscription = _lock(subscription)
    _require_manages(actor, subscription)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = _clean_name(name)
    if url is not None and url.strip() != subscription.url:
        changes["url"] = _clean_url(url, resolve)
    if event_types is not None:
        changes["event_types"] = _clean_event_types(event_types)
    changed = [key for key, value in changes.items() if getattr(subscription, key) != value]
    if not changed:
        return subscription
    _require_owner(actor, subscription)
    before = snapshot(subscription, AUDIT_FIELDS)
    for key in changed:
        setattr(subscription, key, changes[key])
    subscription.updated_at = timezone.now()
    try:
        with transaction.atomic():
            subscription.save(update_fields=[*changed, "updated_at"])
    except IntegrityError as exc:
        raise _name_taken() from exc
    _forget_subscribed_event_types()
    audit_record(
        actor=actor,
        action="webhook.update",
        obj=subscription,
        before=before,
        after=snapshot(subscription, AUDIT_FIELDS),
    )
    return subscription


@transaction.atomic
def webhook_set_active(
    *, actor: User | None, subscription: WebhookSubscription | int, is_active: bool, reason: str = ""
) -> WebhookSubscription:
    """Enable or disable. Enabling clears the failure streak; disabling (by a person, or by the worker with
    `actor=None` after repeated failures) keeps pending deliveries, which resume when it is enabled again."""
    subscription = _lock(subscription)
    if actor is not None:
        _require_manages(actor, subscription)
    if subscription.is_active == is_active:
        return subscription
    before = snapshot(subscription, AUDIT_FIELDS)
    now = timezone.now()
    subscription.is_active = is_active
    if is_active:
        subscription.consecutive_failures = 0
        subscription.disabled_at = None
        subscription.disabled_reason = ""
    else:
        subscription.disabled_at = now
        subscription.disabled_reason = (reason or "Disabled by its owner.")[:300]
    subscription.updated_at = now
    subscription.save(
        update_fields=["is_active", "consecutive_failures", "disabled_at", "disabled_reason", "updated_at"]
    )
    _forget_subscribed_event_types()
    audit_record(
        actor=actor,
        action="webhook.enable" if is_active else "webhook.disable",
        obj=subscription,
        before=before,
        after={**snapshot(subscription, AUDIT_FIELDS), "disabled_reason": subscription.disabled_reason},
    )
    return subscription


@transaction.atomic
def webhook_rotate_secret(*, actor: User, subscription: WebhookSubscription | int) -> SubscriptionWithSecret:
    """Replace the signing secret. Attempts from now on, including retries of older deliveries, use the new one."""
    subscription = _lock(subscription)
    _require_manages(actor, subscription)
    _require_owner(actor, subscription)
    subscription.secret_salt = new_salt()
    subscription.updated_at = timezone.now()
    subscription.save(update_fields=["secret_salt", "updated_at"])
    audit_record(actor=actor, action="webhook.rotate_secret", obj=subscription)
    return SubscriptionWithSecret(subscription, signing_secret(subscription))


@transaction.atomic
def webhook_delete(*, actor: User, subscription: WebhookSubscription | int) -> None:
    """Delete the subscription with its delivery log. A delivery in flight finishes; its result is dropped."""
    subscription = _lock(subscription)
    _require_manages(actor, subscription)
    audit_record(actor=actor, action="webhook.delete", obj=subscription, before=snapshot(subscription, AUDIT_FIELDS))
    subscription.delete()
    _forget_subscribed_event_types()


@transaction.atomic
def delivery_redeliver(*, actor: User, delivery: WebhookDelivery | str) -> WebhookDelivery:
    """Queue a finished delivery (delivered or failed) again, with the same `X-Webhook-Id` and payload and a fresh
    retry window. A delivery still pending or in flight is refused: it is going to be sent anyway."""
    pk = delivery.pk if isinstance(delivery, WebhookDelivery) else delivery
    row = WebhookDelivery.objects.select_for_update(of=("self",)).select_related("subscription").filter(pk=pk).first()
    if row is None:
        raise NotFound("No such delivery.")
    _require_manages(actor, row.subscription)
    if row.state in (WebhookDelivery.State.PENDING, WebhookDelivery.State.SENDING):
        raise Conflict("This delivery is already queued.", code="delivery_queued")
    now = timezone.now()
    row.state = WebhookDelivery.State.PENDING
    row.next_attempt_at = now
    row.retry_until = retry_deadline(now)
    row.save(update_fields=["state", "next_attempt_at", "retry_until"])
    audit_record(
        actor=actor,
        action="webhook.redeliver",
        object_type="security.webhookdelivery",
        object_id=str(row.pk),
        object_repr=f"{row.event_name} to {row.subscription.name}"[:300],
        after={"subscription": row.subscription_id, "event": row.event_name},
    )
    if row.subscription.is_active:
        from security.tasks import webhook_deliver_task

        enqueue_on_commit(webhook_deliver_task, str(row.pk))
    return row


# --- selectors --------------------------------------------------------------------------------------------------------


def webhook_visible_to(user: User) -> QuerySet[WebhookSubscription]:
    """Subscriptions `user` manages: their own; every one for admins; none for those who cannot manage webhooks."""
    if not permissions.can_manage_webhooks(user):
        return WebhookSubscription.objects.none()
    queryset = WebhookSubscription.objects.all()
    return queryset if user.is_admin else queryset.filter(owner=user)


def webhook_get(*, user: User, pk: int | str) -> WebhookSubscription:
    try:
        return webhook_visible_to(user).select_related("owner").get(pk=int(pk))
    except (WebhookSubscription.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound("No such webhook.") from exc


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    next_cursor: str | None


def webhook_list(*, user: User, before_id: int | None = None, limit: int = 50) -> Page:
    """Newest first, keyset-paged on id (index `security_webhook_owner`, or the primary key for admins). One query."""
    queryset = webhook_visible_to(user).select_related("owner")
    if before_id is not None:
        queryset = queryset.filter(pk__lt=before_id)
    rows = list(queryset.order_by("-id")[: limit + 1])
    page = rows[:limit]
    return Page(page, str(page[-1].pk) if len(rows) > limit else None)


def _delivery_cursor(row: WebhookDelivery) -> str:
    return f"{row.created_at.isoformat()}|{row.pk}"


def _parse_delivery_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    stamp, _, pk = (cursor or "").partition("|")
    try:
        at = datetime.fromisoformat(stamp)
        return (at, uuid.UUID(pk)) if at.tzinfo is not None else None
    except ValueError:
        return None


def delivery_list(
    *, user: User, subscription: WebhookSubscription, cursor: str = "", limit: int = 25, with_attempts: bool = True
) -> Page:
    """A subscription's delivery log, newest first, keyset-paged on (created_at, id) (index `security_webhook_log`);
    attempts prefetched: two queries whatever the log's size."""
    if not permissions.can_manage_webhook(user, subscription.owner_id):
        raise NotFound("No such webhook.")
    queryset = WebhookDelivery.objects.filter(subscription=subscription).defer("payload")
    position = _parse_delivery_cursor(cursor)
    if position is not None:
        at, pk = position
        queryset = queryset.filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=pk))
    if with_attempts:
        queryset = queryset.prefetch_related("attempt_log")
    page, next_cursor = keyset_page(queryset.order_by("-created_at", "-id"), limit, _delivery_cursor)
    return Page(page, next_cursor)


def delivery_get(*, user: User, subscription: WebhookSubscription, pk: str) -> WebhookDelivery:
    if not permissions.can_manage_webhook(user, subscription.owner_id):
        raise NotFound("No such delivery.")
    try:
        return WebhookDelivery.objects.prefetch_related("attempt_log").get(subscription=subscription, pk=uuid.UUID(pk))
    except (WebhookDelivery.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound("No such delivery.") from exc

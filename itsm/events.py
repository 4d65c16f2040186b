"""Typed domain events with in-transaction subscribers.

A service publishes an event while its transaction is open; every subscriber runs right there, inside the same
transaction, so what it writes (SLA ledger rows, webhook outbox rows) commits or rolls back together with the change
that caused it. Subscribers that need to reach outside the database schedule that work with
`transaction.on_commit`. This is how `tickets` tells `sla` about a change without importing it (DESIGN.md §2).

Subscribing happens in `AppConfig.ready()`; subscribers are keyed by event class, and `subscribe_all` receives every
event (the generic webhook outbox uses it).
"""

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, TypeVar

from django.db import connection

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """Base for every domain event. `name` is the stable wire name (webhook event type)."""

    name: ClassVar[str] = "event"
    at: datetime
    actor_id: int | None


E = TypeVar("E", bound=DomainEvent)
Subscriber = Callable[[E], None]

_subscribers: dict[type[DomainEvent], list[Callable[[DomainEvent], None]]] = defaultdict(list)
_subscribers_all: list[Callable[[DomainEvent], None]] = []


def subscribe(event_type: type[E], handler: Callable[[E], None]) -> None:
    """Register `handler` for `event_type` (and its subclasses). Registering the same handler twice is a no-op."""
    handlers = _subscribers[event_type]
    if handler not in handlers:
        handlers.append(handler)  # type: ignore[arg-type]


def subscribe_all(handler: Callable[[DomainEvent], None]) -> None:
    if handler not in _subscribers_all:
        _subscribers_all.append(handler)


def unsubscribe(event_type: type[DomainEvent], handler: Callable[..., None]) -> None:
    if handler in _subscribers[event_type]:
        _subscribers[event_type].remove(handler)


def publish(event: DomainEvent) -> None:
    """Deliver `event` to its subscribers, synchronously, inside the caller's transaction.

    Publishing outside a transaction is a programming error: subscribers would commit separately from the change.
    A subscriber that raises aborts the whole change.
    """
    if not connection.in_atomic_block:
        raise RuntimeError(f"publish({type(event).__name__}) must run inside transaction.atomic()")
    for event_type in type(event).__mro__:
        for handler in list(_subscribers.get(event_type, ())):
            handler(event)
    for handler in list(_subscribers_all):
        handler(event)
    logger.debug("event.published", extra={"event": event.name})

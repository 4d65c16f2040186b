"""Pure ticket rules: states, the transition table, the priority matrix. No ORM, no I/O.

The transition table is data: each row says from which state to which state, who may take it, and whether a reason
is required. `tickets.services.ticket_transition` is the one place that enforces it.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.db import models


class TicketType(models.TextChoices):
    INCIDENT = "incident", "Incident"
    REQUEST = "request", "Service request"


NUMBER_PREFIX = {TicketType.INCIDENT: "INC", TicketType.REQUEST: "REQ"}


class TicketState(models.TextChoices):
    NEW = "new", "New"
    ASSIGNED = "assigned", "Assigned"
    IN_PROGRESS = "in_progress", "In progress"
    PENDING = "pending", "Pending"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"


OPEN_STATES = frozenset({TicketState.NEW, TicketState.ASSIGNED, TicketState.IN_PROGRESS, TicketState.PENDING})
FINAL_STATES = frozenset({TicketState.CLOSED, TicketState.CANCELLED})


class PendingReason(models.TextChoices):
    AWAITING_REQUESTER = "awaiting_requester", "Awaiting requester"
    AWAITING_VENDOR = "awaiting_vendor", "Awaiting vendor"
    CHANGE_WINDOW = "change_window", "Awaiting change window"


class Level(models.IntegerChoices):
    HIGH = 1, "High"
    MEDIUM = 2, "Medium"
    LOW = 3, "Low"


class Priority(models.IntegerChoices):
    P1 = 1, "P1 Critical"
    P2 = 2, "P2 High"
    P3 = 3, "P3 Moderate"
    P4 = 4, "P4 Low"


class Actor(StrEnum):
    """Who takes a transition: an agent working the ticket, its requester, or the desk itself (automation)."""

    AGENT = "agent"
    REQUESTER = "requester"
    SYSTEM = "system"


@dataclass(frozen=True)
class Transition:
    source: TicketState
    target: TicketState
    actors: frozenset[Actor]
    needs_reason: bool = False
    label: str = ""


S = TicketState
_AGENT = frozenset({Actor.AGENT, Actor.SYSTEM})
_ANYONE = frozenset({Actor.AGENT, Actor.REQUESTER, Actor.SYSTEM})

TRANSITIONS: tuple[Transition, ...] = (
    Transition(S.NEW, S.ASSIGNED, _AGENT, label="Assign"),
    Transition(S.NEW, S.IN_PROGRESS, _AGENT, label="Start work"),
    Transition(S.NEW, S.PENDING, _AGENT, label="Set pending"),
    Transition(S.NEW, S.RESOLVED, _AGENT, label="Resolve"),
    Transition(S.NEW, S.CANCELLED, _ANYONE, needs_reason=True, label="Cancel"),
    Transition(S.ASSIGNED, S.NEW, _AGENT, label="Unassign"),
    Transition(S.ASSIGNED, S.IN_PROGRESS, _AGENT, label="Start work"),
    Transition(S.ASSIGNED, S.PENDING, _AGENT, label="Set pending"),
    Transition(S.ASSIGNED, S.RESOLVED, _AGENT, label="Resolve"),
    Transition(S.ASSIGNED, S.CANCELLED, _ANYONE, needs_reason=True, label="Cancel"),
    Transition(S.IN_PROGRESS, S.PENDING, _AGENT, label="Set pending"),
    Transition(S.IN_PROGRESS, S.RESOLVED, _AGENT, label="Resolve"),
    Transition(S.IN_PROGRESS, S.CANCELLED, _ANYONE, needs_reason=True, label="Cancel"),
    # A requester's reply to a ticket that awaits them resumes it: that is the SYSTEM actor.
    Transition(S.PENDING, S.IN_PROGRESS, _AGENT, label="Resume"),
    Transition(S.PENDING, S.RESOLVED, _AGENT, label="Resolve"),
    Transition(S.PENDING, S.CANCELLED, _ANYONE, needs_reason=True, label="Cancel"),
    Transition(S.RESOLVED, S.CLOSED, _ANYONE, label="Close"),
    # Reopen: agents at any time before closure, requesters within the reopen window (see `can_reopen`).
    Transition(S.RESOLVED, S.IN_PROGRESS, _ANYONE, needs_reason=True, label="Reopen"),
)

_BY_PAIR: Mapping[tuple[str, str], Transition] = {(t.source, t.target): t for t in TRANSITIONS}


def find_transition(source: str, target: str) -> Transition | None:
    return _BY_PAIR.get((source, target))


def allowed_transitions(source: str, actor: Actor) -> list[Transition]:
    return [t for t in TRANSITIONS if t.source == source and actor in t.actors]


def is_reopen(source: str, target: str) -> bool:
    return source == S.RESOLVED and target in OPEN_STATES


def can_reopen(*, resolved_at: datetime | None, now: datetime, window_days: int) -> bool:
    """Requesters may reopen within `window_days` of the resolution (inclusive of the last second)."""
    return resolved_at is not None and now - resolved_at <= timedelta(days=window_days)


# Impact × urgency → priority, like ServiceNow/GLPI with four levels. An administrator can change the table; this is
# the default the migration loads and the fallback when a row is missing.
DEFAULT_PRIORITY_MATRIX: Mapping[tuple[int, int], int] = {
    (Level.HIGH, Level.HIGH): Priority.P1,
    (Level.HIGH, Level.MEDIUM): Priority.P2,
    (Level.MEDIUM, Level.HIGH): Priority.P2,
    (Level.HIGH, Level.LOW): Priority.P3,
    (Level.MEDIUM, Level.MEDIUM): Priority.P3,
    (Level.LOW, Level.HIGH): Priority.P3,
    (Level.MEDIUM, Level.LOW): Priority.P4,
    (Level.LOW, Level.MEDIUM): Priority.P4,
    (Level.LOW, Level.LOW): Priority.P4,
}


def priority_for(impact: int, urgency: int, matrix: Mapping[tuple[int, int], int] | None = None) -> int:
    table = matrix or DEFAULT_PRIORITY_MATRIX
    return table.get((impact, urgency), DEFAULT_PRIORITY_MATRIX[(impact, urgency)])


def format_number(ticket_type: str, sequence: int) -> str:
    return f"{NUMBER_PREFIX[TicketType(ticket_type)]}-{sequence:06d}"

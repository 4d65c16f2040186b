"""The ticket domain's typed events and the timeline writer.

Services publish these through `itsm.events.publish`; the SLA engine and the webhook outbox subscribe to them.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from itsm.events import DomainEvent
from security.models import User
from tickets.models import Comment, Ticket, TicketEvent


@dataclass(frozen=True, kw_only=True)
class TicketEventBase(DomainEvent):
    ticket_id: int


@dataclass(frozen=True, kw_only=True)
class TicketCreated(TicketEventBase):
    name: ClassVar[str] = "ticket.created"


@dataclass(frozen=True, kw_only=True)
class StatusChanged(TicketEventBase):
    name: ClassVar[str] = "ticket.state_changed"
    from_state: str
    to_state: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Assigned(TicketEventBase):
    name: ClassVar[str] = "ticket.assigned"
    from_assignee_id: int | None
    to_assignee_id: int | None


@dataclass(frozen=True, kw_only=True)
class TeamChanged(TicketEventBase):
    name: ClassVar[str] = "ticket.team_changed"
    from_team_id: int | None
    to_team_id: int | None


@dataclass(frozen=True, kw_only=True)
class PriorityChanged(TicketEventBase):
    name: ClassVar[str] = "ticket.priority_changed"
    from_priority: int
    to_priority: int


@dataclass(frozen=True, kw_only=True)
class CategoryChanged(TicketEventBase):
    name: ClassVar[str] = "ticket.category_changed"
    from_category_id: int
    to_category_id: int


@dataclass(frozen=True, kw_only=True)
class PublicReplyAdded(TicketEventBase):
    name: ClassVar[str] = "ticket.commented"
    comment_id: int
    by_agent: bool


@dataclass(frozen=True, kw_only=True)
class InternalNoteAdded(TicketEventBase):
    name: ClassVar[str] = "ticket.note_added"
    comment_id: int


def timeline_write(
    *,
    ticket: Ticket,
    kind: str,
    actor: User | None,
    at: datetime,
    data: dict[str, Any] | None = None,
    comment: Comment | None = None,
    is_internal: bool = False,
) -> TicketEvent:
    return TicketEvent.objects.create(
        ticket=ticket, kind=kind, actor=actor, at=at, data=data or {}, comment=comment, is_internal=is_internal
    )

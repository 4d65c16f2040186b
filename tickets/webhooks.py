"""Webhook payloads for ticket events (and every event about a ticket, such as SLA warnings and breaches).

Registered with `security.webhooks` in the tickets AppConfig. `data` is what anyone who may see the ticket may read
(the portal shows it to the requester); `internal_data` is for those who may read internal notes.
"""

from typing import Any

from security.models import User
from security.webhooks import WebhookSubject
from tickets.events import InternalNoteAdded, PublicReplyAdded, TicketCreated, TicketEventBase
from tickets.models import Comment, Ticket


def _person(user: User | None) -> dict[str, Any] | None:
    return None if user is None else {"id": user.pk, "name": user.full_name}


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.pk,
        "number": ticket.number,
        "title": ticket.title,
        "type": ticket.type,
        "state": ticket.state,
        "pending_reason": ticket.pending_reason,
        "priority": ticket.priority,
        "impact": ticket.impact,
        "urgency": ticket.urgency,
        "is_confidential": ticket.is_confidential,
        "category": {"id": ticket.category_id, "name": ticket.category.name},
        "team": None if ticket.team is None else {"id": ticket.team_id, "name": ticket.team.name},
        "assignee": _person(ticket.assignee),
        "requester": _person(ticket.requester),
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
        "resolved_at": ticket.resolved_at,
        "closed_at": ticket.closed_at,
    }


def _comment(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.pk,
        "body": comment.body,
        "is_internal": comment.is_internal,
        "author": _person(comment.author),
        "created_at": comment.created_at,
    }


def ticket_subject(event: TicketEventBase) -> WebhookSubject | None:
    ticket = (
        Ticket.objects.select_related("category", "team", "assignee", "requester")
        .defer("search_vector")
        .filter(pk=event.ticket_id)
        .first()
    )
    if ticket is None:
        return None
    data: dict[str, Any] = {"ticket": ticket_summary(ticket)}
    internal: dict[str, Any] = {"ticket": {"priority_override_reason": ticket.priority_override_reason}}
    if isinstance(event, TicketCreated):
        data["ticket"]["description"] = ticket.description
    is_internal = False
    if isinstance(event, PublicReplyAdded | InternalNoteAdded):
        comment = Comment.objects.select_related("author").filter(pk=event.comment_id, ticket=ticket).first()
        if comment is None:
            return None
        if comment.is_internal:
            internal["comment"] = _comment(comment)
            is_internal = True
        else:
            data["comment"] = _comment(comment)
    return WebhookSubject(data=data, internal_data=internal, ticket=ticket, is_internal=is_internal)

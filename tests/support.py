"""Helpers for asserting that a refused change left the database alone."""

from typing import Any

from security.models import AuditLog
from tickets.models import Attachment, Comment, Ticket, TicketEvent


def db_counts() -> dict[str, int]:
    return {
        "tickets": Ticket.objects.count(),
        "events": TicketEvent.objects.count(),
        "comments": Comment.objects.count(),
        "attachments": Attachment.objects.count(),
        "audit": AuditLog.objects.count(),
    }


def db_state(*tickets: Ticket) -> dict[str, Any]:
    """Everything a refused change must leave alone: row counts and every column of the given tickets."""
    return {
        "counts": db_counts(),
        "tickets": [Ticket.objects.filter(pk=t.pk).values().get() for t in tickets],
    }

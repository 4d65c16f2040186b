"""Tickets in a given state, reached through the services along legal paths (so timelines and audit rows are real)."""

from tickets import services
from tickets.models import Ticket
from tickets.state import PendingReason, TicketState


def ticket_in_state(desk, target: str, **create) -> Ticket:  # type: ignore[no-untyped-def]
    """A laptop ticket raised by the desk's requester and worked by `desk.agent` until it is in `target`."""
    ticket = desk.ticket(**create)
    agent = desk.agent

    def move(to_state: str, **kwargs: str) -> Ticket:
        return services.ticket_transition(actor=agent, ticket=ticket, to_state=to_state, **kwargs)

    if target == TicketState.ASSIGNED:
        ticket = services.ticket_assign(actor=agent, ticket=ticket, assignee=agent)
    elif target == TicketState.IN_PROGRESS:
        ticket = move(TicketState.IN_PROGRESS)
    elif target == TicketState.PENDING:
        ticket = move(TicketState.PENDING, pending_reason=PendingReason.AWAITING_VENDOR)
    elif target == TicketState.RESOLVED:
        ticket = move(TicketState.RESOLVED)
    elif target == TicketState.CLOSED:
        move(TicketState.RESOLVED)
        ticket = move(TicketState.CLOSED)
    elif target == TicketState.CANCELLED:
        ticket = move(TicketState.CANCELLED, reason="Raised twice.")
    ticket.refresh_from_db()
    assert ticket.state == target
    return ticket

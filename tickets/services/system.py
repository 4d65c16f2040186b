"""Changes the service desk makes by itself (`actor=None`), such as SLA escalations (docs/sla-escalations.md).

They keep the contract of the agent services (lock, no-op when unchanged, timeline, version, audit, event) without a
person's permission check, but still obey the rules the data must: an assignee is an active member of the team the
ticket goes to, confidential tickets stay in security teams, closed and cancelled tickets are not changed. A refusal
raises a `DomainError` and changes nothing. `tickets` never imports `sla`: the caller passes plain values.
"""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from itsm.errors import InvalidTransition, ValidationFailed
from security.audit import snapshot
from security.models import Membership, Team, User
from tickets import events, state
from tickets.models import Ticket, TicketEvent
from tickets.services.tickets import (
    TICKET_AUDIT_FIELDS,
    _apply_assignment,
    _lock_ticket,
    _save_priority_change,
)
from tickets.state import Priority


def _refuse_final(ticket: Ticket, what: str) -> None:
    if ticket.state in state.FINAL_STATES:
        raise InvalidTransition(f"A closed or cancelled ticket cannot be {what}.", code="ticket_final")


@transaction.atomic
def ticket_assign_by_system(*, ticket: Ticket | int, assignee: User | None, team: Team | None = None) -> Ticket:
    """Give the ticket to `assignee` and/or move it to `team` (the ticket's team when None). Moving to another team
    without an assignee clears the assignee, as `ticket_assign` does. Locks the ticket; a no-op when nothing
    changes; the assignee is e-mailed after commit."""
    ticket = _lock_ticket(ticket)
    _refuse_final(ticket, "reassigned")
    target_team = team if team is not None else ticket.team
    if assignee is not None and (
        not assignee.is_active
        or target_team is None
        or not Membership.objects.filter(user=assignee, team=target_team).exists()
    ):
        raise InvalidTransition(
            "The assignee must be an active member of the ticket's team.", code="assignee_not_in_team"
        )
    if ticket.is_confidential and target_team is not None and not target_team.is_security:
        raise InvalidTransition("Confidential tickets can only move to a security team.", code="confidential_team")
    return _apply_assignment(actor=None, ticket=ticket, assignee=assignee, team=target_team, now=timezone.now())


@transaction.atomic
def ticket_raise_priority_by_system(*, ticket: Ticket | int, priority: int, reason: str) -> Ticket:
    """Raise the priority to `priority` (an override with `reason`); a ticket already at that priority or higher is
    returned unchanged. Never lowers it."""
    if priority not in Priority.values:
        raise ValidationFailed("Invalid priority.", fields={"priority": ["Choose P1 to P4."]})
    ticket = _lock_ticket(ticket)
    _refuse_final(ticket, "reprioritised")
    if ticket.priority <= priority:
        return ticket
    before = snapshot(ticket, TICKET_AUDIT_FIELDS)
    old_priority = ticket.priority
    ticket.priority = priority
    ticket.priority_is_overridden = True
    ticket.priority_override_reason = reason[:500]
    return _save_priority_change(
        None, ticket, before, old_priority, ["priority", "priority_is_overridden", "priority_override_reason"], reason
    )


def ticket_timeline_system_note(*, ticket: Ticket, at: datetime, summary: str, data: dict[str, Any]) -> TicketEvent:
    """Record what the service desk did on the ticket's timeline as an internal `sla_escalated` entry (agents see
    it; requesters do not). The caller holds the transaction and writes the audit row."""
    return events.timeline_write(
        ticket=ticket,
        kind=TicketEvent.Kind.SLA_ESCALATED,
        actor=None,
        at=at,
        data={**data, "summary": summary},
        is_internal=True,
    )

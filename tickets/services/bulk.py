"""Bulk changes from the desk queue: the same change applied to many tickets, one ticket at a time.

Not one transaction on purpose: each ticket goes through its ordinary service (`ticket_assign`, `ticket_transition`),
which locks that row, re-checks permission and the transition table, and commits or refuses on its own. One refusal
(a closed ticket, an assignee outside that ticket's team) leaves the others applied and itself unchanged, and each
ticket holds its row lock only for its own change.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from itsm.errors import DomainError, NotFound, ValidationFailed
from security.models import User
from tickets import selectors
from tickets.models import Ticket
from tickets.services.tickets import ticket_assign, ticket_transition

MAX_BULK_TICKETS = 100


@dataclass
class BulkOutcome:
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # (number, why) for each ticket a service refused; nothing changed on those.
    refused: list[tuple[str, str]] = field(default_factory=list)
    # Numbers that do not exist or that the actor may not see: the same answer for both.
    not_found: list[str] = field(default_factory=list)


def _apply(*, actor: User, numbers: Iterable[str], change: Callable[[Ticket], Ticket]) -> BulkOutcome:
    wanted = list(dict.fromkeys(numbers))  # unique, in the order the page listed them
    if len(wanted) > MAX_BULK_TICKETS:
        raise ValidationFailed(
            "Too many tickets.", fields={"tickets": [f"Choose at most {MAX_BULK_TICKETS} tickets at a time."]}
        )
    visible = selectors.tickets_by_number(user=actor, numbers=wanted)
    outcome = BulkOutcome()
    for number in wanted:
        ticket = visible.get(number)
        if ticket is None:
            outcome.not_found.append(number)
            continue
        try:
            changed = change(ticket)
        except NotFound:
            outcome.not_found.append(number)
        except DomainError as exc:
            outcome.refused.append((number, exc.detail))
        else:
            (outcome.updated if changed.version != ticket.version else outcome.unchanged).append(number)
    return outcome


def ticket_bulk_assign(*, actor: User, numbers: Iterable[str], assignee: User | None) -> BulkOutcome:
    """Give each ticket to `assignee` (None to unassign) through `ticket_assign`, each in its own transaction."""
    return _apply(
        actor=actor,
        numbers=numbers,
        change=lambda ticket: ticket_assign(actor=actor, ticket=ticket, assignee=assignee),
    )


def ticket_bulk_transition(
    *, actor: User, numbers: Iterable[str], to_state: str, reason: str = "", pending_reason: str = ""
) -> BulkOutcome:
    """Move each ticket to `to_state` through `ticket_transition`, each in its own transaction; a ticket for which
    the transition table has no such move is refused and left as it was."""
    return _apply(
        actor=actor,
        numbers=numbers,
        change=lambda ticket: ticket_transition(
            actor=actor, ticket=ticket, to_state=to_state, reason=reason, pending_reason=pending_reason
        ),
    )

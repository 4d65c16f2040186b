"""Changes the service desk makes by itself (`tickets.services.system`, used by SLA escalations): no person's
permission check, but the data rules hold and a refusal changes nothing."""

import pytest

from itsm.errors import InvalidTransition
from security.models import AuditLog
from tickets import services
from tickets.models import Ticket, TicketEvent
from tickets.services.system import ticket_assign_by_system, ticket_raise_priority_by_system


def test_reassigning_moves_team_and_assignee_as_the_service_desk(desk) -> None:  # type: ignore[no-untyped-def]
    ticket = desk.ticket()

    updated = ticket_assign_by_system(ticket=ticket, assignee=desk.network_agent, team=desk.network)

    assert (updated.team_id, updated.assignee_id, updated.state, updated.version) == (
        desk.network.pk,
        desk.network_agent.pk,
        "assigned",
        2,
    )
    kinds = list(TicketEvent.objects.filter(ticket=ticket, actor__isnull=True).values_list("kind", flat=True))
    assert kinds == ["state_changed", "team_changed", "assigned"]
    assert AuditLog.objects.filter(action="ticket.assign", actor__isnull=True).count() == 1


@pytest.mark.parametrize(
    ("case", "code"),
    [("not_a_member", "assignee_not_in_team"), ("confidential", "confidential_team"), ("closed", "ticket_final")],
)
def test_refusals_change_nothing(desk, case, code) -> None:  # type: ignore[no-untyped-def]
    ticket = desk.ticket(category=desk.phishing) if case == "confidential" else desk.ticket()
    if case == "closed":
        services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="cancelled", reason="Duplicate")
    ticket = Ticket.objects.get(pk=ticket.pk)
    assignee, team = {
        "not_a_member": (desk.network_agent, None),
        "confidential": (None, desk.network),
        "closed": (desk.agent2, None),
    }[case]
    events_before = TicketEvent.objects.filter(ticket=ticket).count()

    with pytest.raises(InvalidTransition) as refused:
        ticket_assign_by_system(ticket=ticket, assignee=assignee, team=team)

    assert refused.value.code == code
    after = Ticket.objects.get(pk=ticket.pk)
    assert (after.team_id, after.assignee_id, after.version) == (ticket.team_id, ticket.assignee_id, ticket.version)
    assert TicketEvent.objects.filter(ticket=ticket).count() == events_before


def test_raising_the_priority_only_ever_raises_it(desk) -> None:  # type: ignore[no-untyped-def]
    ticket = desk.ticket()  # P3
    raised = ticket_raise_priority_by_system(ticket=ticket, priority=2, reason="SLA escalation")
    assert (raised.priority, raised.priority_is_overridden, raised.priority_override_reason) == (
        2,
        True,
        "SLA escalation",
    )
    unchanged = ticket_raise_priority_by_system(ticket=ticket, priority=3, reason="SLA escalation")
    assert (unchanged.priority, unchanged.version) == (2, raised.version)
    assert TicketEvent.objects.filter(ticket=ticket, kind="priority_changed", actor__isnull=True).count() == 1
